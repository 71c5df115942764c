"""``python -m jaxgan.evaluate``: how good are the samples? Numbers for generated images and for
held-out real images (the ceiling), in the feature space of a classifier jaxgan trains itself.

    python -m jaxgan.evaluate --train-classifier --dataset mnist       # once per dataset
    python -m jaxgan.evaluate --dataset mnist --ckpt_dir checkpoints --num_samples 10000 --json out.json

Rows: generated samples (``--num_samples``), generated samples of the held-out set's size, and the
held-out real test split. Each is compared with real training images (up to 10,000): Fréchet
distance of classifier features (FID's formula, but *not* FID: the features are jaxgan's CNN's),
classifier score (Inception-score formula), class coverage and KL of the predicted-class
histogram to the training labels', and k-NN precision/recall (k = 3).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from jaxgan import checkpoint as ckpt_lib
from jaxgan import classifier as clf_lib
from jaxgan import data as data_lib
from jaxgan import metrics, sample
from jaxgan.config import DATASETS, ConfigError, OneLineParser, canonical_dataset

REFERENCE_SIZE = 10000


def score_set(clf: clf_lib.Classifier, images: np.ndarray, ref_feats: np.ndarray,
              ref_labels: np.ndarray) -> dict:
    """All metrics of one image set against the real training reference."""
    feats, probs = clf.predict(images)
    out = {"n": int(len(images)),
           "frechet_distance": metrics.frechet_distance(feats, ref_feats),
           "classifier_score": metrics.classifier_score(probs)}
    out.update(metrics.mode_coverage(probs.argmax(1), np.bincount(ref_labels, minlength=10)))
    out.update(metrics.precision_recall(ref_feats, feats, k=3))
    return out


class Evaluator:
    """Holds the classifier and the real reference features, to score many sample sets."""

    def __init__(self, dataset: str, data_dir: str, ckpt_dir: str, download: bool = False,
                 skip_checksums: bool = False):
        self.clf = clf_lib.load(ckpt_dir, dataset, DATASETS[dataset][1])
        train_x, train_y = data_lib.load_numpy(dataset, data_dir, download=download, skip_checksums=skip_checksums)
        self.test_x, _ = data_lib.load_numpy(dataset, data_dir, train=False, download=download,
                                             skip_checksums=skip_checksums)
        pick = np.random.default_rng(0).permutation(len(train_x))[:REFERENCE_SIZE]
        self.ref_labels = np.asarray(train_y)[pick]
        self.ref_feats, _ = self.clf.predict(train_x[pick])

    def score(self, images: np.ndarray) -> dict:
        return score_set(self.clf, images, self.ref_feats, self.ref_labels)


def table(rows: dict[str, dict]) -> str:
    lines = ["| set | n | Fréchet dist. (jaxgan CNN) | classifier score | classes covered | KL to real classes | precision | recall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['n']} | {r['frechet_distance']:.3f} | {r['classifier_score']:.3f} | "
                     f"{r['classes_covered']}/10 | {r['kl_to_real']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m jaxgan.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data_dir", default="data")
    p.add_argument("--ckpt_dir", default="checkpoints")
    p.add_argument("--num_samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bn", choices=("batch", "running"), default="batch",
                   help="G's BatchNorm statistics when sampling (see jaxgan.sample)")
    p.add_argument("--step", type=int, default=None, help="generator checkpoint step (default newest)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--train-classifier", dest="train_classifier", action="store_true",
                   help="train and save the dataset's classifier on the real training split")
    p.add_argument("--classifier_epochs", type=int, default=5)
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--skip_checksums", action="store_true")
    args = p.parse_args(argv)
    try:
        dataset = canonical_dataset(args.dataset)
        if args.num_samples < 2 or args.classifier_epochs < 1 or args.seed < 0:
            raise ConfigError("--num_samples must be >= 2, --classifier_epochs >= 1, --seed >= 0")
        if args.json and (not args.json.endswith(".json") or os.path.isdir(args.json)
                          or not os.path.isdir(os.path.dirname(os.path.abspath(args.json)))):
            raise ConfigError(f"--json must be a .json file in an existing folder, got {args.json!r}")
        if args.train_classifier:
            x, y = data_lib.load_numpy(dataset, args.data_dir, download=args.download,
                                       skip_checksums=args.skip_checksums)
            tx, ty = data_lib.load_numpy(dataset, args.data_dir, train=False, download=args.download,
                                         skip_checksums=args.skip_checksums)
            clf = clf_lib.train(x, y, tx, ty, DATASETS[dataset][1], epochs=args.classifier_epochs)
            path = clf_lib.save(clf, args.ckpt_dir, dataset, {"train_images": len(x), "test_images": len(tx)})
            print(f"classifier for {dataset}: test accuracy {clf.test_accuracy:.4f} on {len(tx)} held-out "
                  f"images (trained on {len(x)}); saved to {path}")
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"dataset": dataset, "test_accuracy": clf.test_accuracy, "test_images": len(tx)}, f)
            return 0
        ev = Evaluator(dataset, args.data_dir, args.ckpt_dir, args.download, args.skip_checksums)
        gan, state, record = sample.load_generator(dataset, args.ckpt_dir, args.step)
        batch = record["config"]["batch_size"] if args.bn == "batch" else 1000
        fake = sample.draw(gan, state, args.num_samples, args.seed, args.bn, batch=batch)
        n_test = len(ev.test_x)
        rows = {f"generated (step {record['step']}, --bn {args.bn})": ev.score(fake)}
        if n_test < args.num_samples:
            rows["generated, held-out size"] = ev.score(fake[:n_test])
        rows["held-out real (ceiling)"] = ev.score(ev.test_x)
    except (ConfigError, ckpt_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"classifier test accuracy {ev.clf.test_accuracy:.4f}; reference: {len(ev.ref_feats)} real "
          f"training images")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dataset": dataset, "classifier_test_accuracy": ev.clf.test_accuracy,
                       "reference_images": len(ev.ref_feats), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
