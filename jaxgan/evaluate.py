"""``python -m jaxgan.evaluate``: how good are a generator's samples, next to held-out real images?

    python -m jaxgan.evaluate --dataset mnist --ckpt_dir checkpoints --json out.json
    python -m jaxgan.evaluate --dataset mnist --best                  # the --keep_best checkpoint
    python -m jaxgan.evaluate --train_classifier --dataset mnist      # train your own judge ...
    python -m jaxgan.evaluate --dataset mnist --judge own             # ... and score with it
    python -m jaxgan.evaluate --dataset mnist --samples theirs.npy    # images made by any tool
    python -m jaxgan.evaluate --dataset folder --data_dir DIR --train_classifier   # a folder's judge

The judge is the classifier in whose feature space the numbers are measured: for MNIST jaxgan
ships one (``--judge shipped``, the default there); for other datasets train your own first; a
labelled folder's is always its own, keyed to the folder and split by its ``--held_out``. Rows
compare sets of the same size n: the generated samples and the held-out real test split (the
ceiling), both n = the held-out split's size unless ``--num_samples`` is smaller. Metrics (see
``jaxgan.quality``): Fréchet distance of the judge's features, classifier score, class coverage
and KL to the training labels, k-NN precision/recall, each against real training images. A
conditional run (``--conditional``) draws every class in turn and also reports the judge's
accuracy on the asked labels, overall and per class, and per class the Fréchet distance and recall
against that class's real images, each beside its held-out ceiling at the same n
(``quality.Evaluator.class_rows``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from jaxgan import checkpoint as ckpt_lib
from jaxgan import classifier as clf_lib
from jaxgan import data as data_lib
from jaxgan import generate, quality, runs, runtime
from jaxgan.config import DATASETS, FOLDER, FOLDER_IMAGE, ConfigError, OneLineParser, canonical_dataset, dataset_name


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m jaxgan.evaluate", description=__doc__.splitlines()[0])
    runs.add_run_flags(p, member_help="score one member of a --population run (default: every member, then "
                                      "their mean +- std and the best by --best_by)")
    p.add_argument("--num_samples", type=int, default=None,
                   help="generated images (default: the held-out split's size, so every row is comparable); "
                        "more are also scored whole, in a row marked not comparable")
    p.add_argument("--best_by", choices=("fd", "score"), default="fd",
                   help="with several members: which is best, by lowest Frechet distance (fd) or highest "
                        "classifier score (default fd)")
    p.add_argument("--judge", choices=quality.JUDGES, default="auto",
                   help="shipped: jaxgan's classifier; own: yours from --train_classifier; "
                        "auto (default): shipped where jaxgan ships one (mnist), else own")
    p.add_argument("--samples", metavar="PATH",
                   help="score these images instead of a run's: a .npy of uint8 (N, H, W, C), an .npz with the "
                        "key images (and labels), or a folder of images, made by any tool; the same judge, "
                        "held-out split, matched-size rule and JSON (default: off)")
    p.add_argument("--json", help="also write the results to this .json file (default: none)")
    p.add_argument("--train_classifier", "--train-classifier", dest="train_classifier", action="store_true",
                   help="train your own judge on the real training split, save it under "
                        "<ckpt_dir>/classifier/<dataset> and exit (default off)")
    p.add_argument("--classifier_epochs", type=int, default=5,
                   help="epochs of --train_classifier (default 5)")
    p.add_argument("--image_size", type=int, default=None,
                   help=f"--train_classifier on a folder: the side its judge reads (default {FOLDER_IMAGE[1]}; "
                        "other sizes are resized to it when scored)")
    p.add_argument("--channels", type=int, default=None,
                   help="--train_classifier on a folder: 1 or 3 (default: the folder's own)")
    p.add_argument("--held_out", type=float, default=None,
                   help="--train_classifier on a folder: its held-out fraction, by the hash of each path, "
                        "as a run's --held_out (default 0.1); score a run with a judge of the same split")
    p.add_argument("--strict_images", action="store_true",
                   help="a folder: refuse unreadable images instead of skipping them (default off)")
    p.add_argument("--no_download", "--no-download", dest="download", action="store_false",
                   help="never download the dataset (default: download if missing)")
    p.add_argument("--skip_checksums", action="store_true",
                   help="accept dataset files whose checksums differ (default off)")
    return p


def _check(args) -> str:
    dataset = canonical_dataset(args.dataset)
    given = [f"--{n}" for n in ("image_size", "channels", "held_out") if getattr(args, n) is not None]
    if given and not (dataset == FOLDER and args.train_classifier):
        raise ConfigError(f"{', '.join(given)}: for --train_classifier on --dataset folder only (a run's own are "
                          "read from its checkpoint, a built-in dataset's judge reads its native images)")
    if args.channels is not None and args.channels not in (1, 3):
        raise ConfigError(f"--channels must be 1 (gray) or 3 (colour), got {args.channels}")
    if args.image_size is not None and args.image_size < 4:
        raise ConfigError(f"--image_size must be >= 4 (the judge pools twice), got {args.image_size}")
    if args.held_out is not None and not 0.0 < args.held_out < 1.0:
        raise ConfigError(f"--held_out must be in (0, 1), got {args.held_out}")
    if args.num_samples is not None and args.num_samples < 2:
        raise ConfigError(f"--num_samples must be >= 2, got {args.num_samples}")
    if args.member is not None and args.member < 0:
        raise ConfigError(f"--member must be >= 0, got {args.member}")
    if args.classifier_epochs < 1 or args.seed < 0:
        raise ConfigError("--classifier_epochs must be >= 1 and --seed >= 0")
    if args.json and (not args.json.endswith(".json") or os.path.isdir(args.json)
                      or not os.path.isdir(os.path.dirname(os.path.abspath(args.json)))):
        raise ConfigError(f"--json must be a .json file in an existing folder, got {args.json!r}")
    return dataset


def train_own_judge(args, dataset: str) -> dict:
    """``--train_classifier``: train, save and describe the user's own judge: on a built-in
    dataset's train files (tested on its test files), or on a labelled folder's training split
    (tested on its held-out split), keyed to that folder."""
    key, extra = dataset_name(dataset, args.data_dir), {}
    if dataset == FOLDER:
        found = data_lib.folder_classes(args.data_dir) if os.path.isdir(args.data_dir) else None
        if found is not None and not found:  # a flat folder: said before anything is read or written
            raise ConfigError(quality.unlabelled_folder(args.data_dir))
        if found is not None and len(found) < 2:
            raise ConfigError(f"folder {args.data_dir!r} has one class ({found[0]!r}): a judge learns to tell "
                              "classes apart, and with one there is nothing to learn")
        size = args.image_size or FOLDER_IMAGE[1]
        channels = args.channels or data_lib.folder_channels(args.data_dir)
        held_out = 0.1 if args.held_out is None else args.held_out
        folder = data_lib.load_folder(args.data_dir, size, channels, strict=args.strict_images)
        print(folder.summary(held_out))
        (x, y), (tx, ty) = quality.folder_reals(folder, held_out)
        shape, classes = (channels, size, size), folder.num_classes
        extra = {"held_out": held_out, "classes": list(folder.classes), "data_dir": os.path.realpath(args.data_dir)}
    else:
        x, y = data_lib.load_numpy(dataset, args.data_dir, download=args.download, skip_checksums=args.skip_checksums)
        tx, ty = data_lib.load_numpy(dataset, args.data_dir, train=False, download=args.download,
                                     skip_checksums=args.skip_checksums)
        shape, classes = DATASETS[dataset][1], None
    clf = clf_lib.train(x, y, tx, ty, shape, epochs=args.classifier_epochs, num_classes=classes)
    path = clf_lib.save(clf, args.ckpt_dir, key, extra)
    print(f"classifier for {key}: test accuracy {clf.test_accuracy:.4f} on {len(tx)} held-out images "
          f"(trained on {len(x)}; sha256 {clf_lib.sha256(clf)[:12]}); saved to {path}; "
          "score with it by --judge own" + (" (a folder's judge is always its own)" if dataset == FOLDER else ""))
    return {"dataset": key, "test_accuracy": clf.test_accuracy, "train_images": len(x),
            "test_images": len(tx), "sha256": clf_lib.sha256(clf), "path": path, **extra}


def evaluate(args, dataset: str) -> dict:
    """Score the generator's samples and the held-out real images at matched sizes; a population's
    members one by one (or ``--member i``), with their mean +- std and the best by a rule."""
    judge = quality.load_judge(dataset, args.ckpt_dir, args.judge, args.data_dir)  # a missing judge is said first
    key = dataset_name(dataset, args.data_dir)
    cfg = generate.run_config(key, args.ckpt_dir, args.best, args.model)
    if cfg.image_shape[0] != judge[0].image_shape[0]:
        raise ConfigError(f"the run makes {cfg.image_shape[0]}-channel images (--channels {cfg.channels}); the "
                          f"{key} judge reads {judge[0].image_shape[0]}-channel ones")
    # Real images are compared through the same path as the samples: at the size the model trains
    # on (a DCGAN's 32x32 for MNIST's 28), then at the judge's (quality.Evaluator).
    ev = quality.Evaluator(dataset, args.data_dir, args.ckpt_dir, args.download, args.skip_checksums, judge,
                           image_size=cfg.image_shape[1], held_out=cfg.held_out,
                           strict=args.strict_images)
    size = cfg.population
    members = [args.member] if args.member is not None or size == 1 else list(range(size))
    generated, per_member, conditional = {}, {}, {}
    for i in members:
        gan, state, record = generate.load_generator(key, args.ckpt_dir, args.step, best=args.best, member=i,
                                                     model=args.model)
        num = args.num_samples or ev.matched_n
        # With --bn batch, G sees batches of the training size, as during training and in its grids.
        batch = record["config"]["batch_size"] if args.bn == "batch" else 1000
        best = record.get("best") or {}
        which = (f"best by {best.get('metric', '?')} at epoch {best.get('epoch', '?')}, " if args.best else "") \
            + f"step {record['step']}" + (f", member {i}" if size > 1 else "")
        name = f"generated ({which}, --bn {args.bn})"
        generated[name] = generate.draw(gan, state, num, args.seed, args.bn, batch=batch)
        per_member[name] = i
        if gan.n_classes:  # draw() asked for every class in turn: balanced_labels
            conditional[name] = ev.class_rows(generated[name], generate.balanced_labels(gan, num))
    rows = ev.matched_rows(generated)
    for name, i in per_member.items():
        rows[name]["member"] = i
    epoch = record["step"] / record["steps_per_epoch"] if record.get("steps_per_epoch") else None
    generator = {"ckpt_dir": args.ckpt_dir, "step": int(record["step"]), "epoch": epoch, "best": args.best,
                 "kept_by": (best or None) if args.best else None, "bn": args.bn, "seed": args.seed,
                 "num_samples": num, "training_config": record["config"], "members": members}
    out = {"dataset": key, "judge": ev.judge.to_dict(), "reference_images": len(ev.ref_feats),
           "held_out_images": ev.matched_n, "compared_at": ev.path, "generator": generator, "rows": rows}
    if conditional:
        out["conditional"] = conditional
    if len(members) > 1:
        out["population"] = quality.summarize([rows[name] for name in per_member], args.best_by)
    return out


def score_samples(args, dataset: str) -> dict:
    """``--samples PATH``: score images made elsewhere exactly as a run's samples are scored: the
    same judge, the real images through the same path (at the samples' size, then the judge's),
    the same matched-size rows against the held-out split, and the same JSON."""
    judge = quality.load_judge(dataset, args.ckpt_dir, args.judge, args.data_dir)
    images, labels = data_lib.load_samples(args.samples)
    want = judge[0].image_shape[0]
    if images.shape[-1] != want:
        raise ConfigError(f"--samples {args.samples!r}: the {judge[1].dataset} judge reads {want}-channel images, "
                          f"these have {images.shape[-1]}")
    if args.num_samples:
        images = images[:args.num_samples]
    ev = quality.Evaluator(dataset, args.data_dir, args.ckpt_dir, args.download, args.skip_checksums, judge,
                           image_size=images.shape[1], strict=args.strict_images)
    rows = ev.matched_rows({f"samples ({os.path.basename(os.path.normpath(args.samples))})": images})
    generator = {"samples": args.samples, "num_samples": int(len(images)),
                 "image_size": int(images.shape[1]), "labels": labels is not None}
    return {"dataset": dataset_name(dataset, args.data_dir), "judge": ev.judge.to_dict(),
            "reference_images": len(ev.ref_feats), "held_out_images": ev.matched_n, "compared_at": ev.path,
            "generator": generator, "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.setup()
    try:
        dataset = _check(args)
        if args.train_classifier:
            result = train_own_judge(args, dataset)
        else:
            result = score_samples(args, dataset) if args.samples else evaluate(args, dataset)
    except (ConfigError, ckpt_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.train_classifier:
        judge = quality.Judge(**{k: v for k, v in result["judge"].items() if k != "name"})
        print(judge.describe())
        print(f"reference: {result['reference_images']} real training images; ceiling: "
              f"{result['held_out_images']} held-out real images; compared at {result['compared_at']}")
        print(quality.table(result["rows"]))
        for name, cond in result.get("conditional", {}).items():
            print(f"\n{name}, by class:")
            print(quality.class_table(cond) + "\n")
        if "population" in result:
            print(quality.population_table(result["population"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
