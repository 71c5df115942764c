"""Sample quality of image sets, as judged by a classifier: the library behind ``python -m
jaxgan.evaluate`` and the trainer's ``--eval_every``.

An :class:`Evaluator` holds a judge (the dataset's shipped classifier, or the user's own), the
judge's features of up to 10,000 real training images (the reference every set is compared with)
and the held-out real test split (the ceiling). Comparable rows compare sets *of the same size*:
the Fréchet distance, k-NN recall and the class histogram all depend on n, so a generated set is
only held against the ceiling at the ceiling's n (:meth:`Evaluator.matched_rows`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from jaxgan import classifier as clf_lib
from jaxgan import data as data_lib
from jaxgan import metrics
from jaxgan.config import DATASETS, FOLDER, ConfigError, dataset_name

REFERENCE_SIZE = 10000  # real training images every set is compared with (all of them if fewer)
JUDGES = ("auto", "shipped", "own")


def score_set(clf: clf_lib.Classifier, images: np.ndarray, ref_feats: np.ndarray,
              ref_labels: np.ndarray) -> dict:
    """All metrics of one uint8 (N, H, W, C) image set against the real training reference."""
    feats, probs = clf.predict(images)
    out = {"n": int(len(images)),
           "frechet_distance": metrics.frechet_distance(feats, ref_feats),
           "classifier_score": metrics.classifier_score(probs)}
    k = probs.shape[1]  # the judge's class count: the dataset's, not an assumed 10
    out.update(metrics.mode_coverage(probs.argmax(1), np.bincount(ref_labels, minlength=k), num_classes=k))
    out["num_classes"] = k
    out.update(metrics.precision_recall(ref_feats, feats, k=3))
    return out


@dataclass(frozen=True)
class Judge:
    """Which classifier scored the numbers."""

    kind: str  # "shipped" (inside the package) or "own" (trained by the user)
    dataset: str
    source: str  # the file or checkpoint folder it came from
    sha256: str  # of its parameters as a judge .npz (for a shipped one: of the file itself)
    train_images: int
    test_images: int
    test_accuracy: float
    held_out: float | None = None  # a folder's judge: the fraction of the folder it held out

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.dataset}@{self.sha256[:12]}"

    def describe(self) -> str:
        trained = f"trained on {self.train_images} images" if self.train_images else "training set size not recorded"
        held_out = f" on {self.test_images} held-out" if self.test_images else ""
        return (f"judge {self.name} ({self.kind} classifier, {self.source}; sha256 {self.sha256[:12]}, "
                f"{trained}, test accuracy {self.test_accuracy:.4f}{held_out})")

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


def load_judge(dataset: str, ckpt_dir: str, judge: str = "auto", data_dir: str = "data",
               ) -> tuple[clf_lib.Classifier, Judge]:
    """The classifier that scores ``dataset``: ``shipped`` (jaxgan's, SHA-256 checked), ``own``
    (``<ckpt_dir>/classifier/<name>``), or ``auto``: shipped where jaxgan ships one, else own. A
    folder's judge is always its own, keyed by the folder (``dataset_name``: its name plus a
    fingerprint of its path), and reads the images it was trained on (its record says which)."""
    if judge not in JUDGES:
        raise ConfigError(f"--judge must be one of {', '.join(JUDGES)}, got {judge!r}")
    key = dataset_name(dataset, data_dir)
    if dataset == FOLDER:
        if judge == "shipped":
            raise ConfigError("jaxgan ships no judge for a folder; train the folder's own with `python -m "
                              f"jaxgan.evaluate --train_classifier --dataset folder --data_dir {data_dir}`")
        if not os.path.isdir(clf_lib.folder(ckpt_dir, key)) and not data_lib.folder_classes(data_dir):
            raise ConfigError(unlabelled_folder(data_dir))
        judge, shape, hint = "own", None, f"--dataset folder --data_dir {data_dir}"
    else:
        shape, hint = DATASETS[dataset][1], None
    if judge == "auto":
        judge = "shipped" if clf_lib.shipped(dataset) else "own"
    if judge == "shipped":
        if clf_lib.shipped(dataset) is None:
            raise ConfigError(f"jaxgan ships no judge for {dataset}; use --judge own (after "
                              f"`python -m jaxgan.evaluate --train_classifier --dataset {dataset}`)")
        clf = clf_lib.load_shipped(dataset, shape)
        sha = clf_lib.shipped(dataset)["sha256"]  # the file's, checked by load_shipped
        source = "jaxgan/judges/" + clf_lib.shipped(dataset)["file"]
    else:
        clf = clf_lib.load(ckpt_dir, key, shape, hint=hint)
        sha = clf_lib.sha256(clf)
        source = clf_lib.folder(ckpt_dir, key)
    return clf, Judge(judge, key, source, sha, clf.train_images, clf.test_images, clf.test_accuracy, clf.held_out)


def unlabelled_folder(root: str) -> str:
    """Why an unlabelled folder gets no metrics (one line)."""
    return (f"folder {root!r} has no class subfolders, so no labels: every metric jaxgan reports (Frechet "
            "distance, classifier score, class coverage, precision/recall) is measured in the features of a "
            "classifier trained on labelled images, so none remains for an unlabelled folder; sort its images "
            "into one subfolder per class to train its judge (--train_classifier), or look at the grids")


def folder_reals(folder: data_lib.Folder, held_out: float,
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A labelled folder's (training images, labels) and (held-out images, labels), split as its
    runs split it (``Folder.split``); an unlabelled folder is refused in one line."""
    if folder.labels is None:
        raise ConfigError(unlabelled_folder(folder.root))
    test = folder.split(held_out)
    if min(test.sum(), (~test).sum()) < 2:  # the metrics compare sets of at least 2
        raise ConfigError(f"folder {folder.root!r}: --held_out {held_out} of its {len(test)} images holds out "
                          f"{int(test.sum())} and trains on {int((~test).sum())}; each needs at least 2")
    return (folder.images[~test], folder.labels[~test]), (folder.images[test], folder.labels[test])


def check_fit(dataset: str, judge: tuple[clf_lib.Classifier, Judge], channels: int | None = None,
              held_out: float | None = None) -> tuple[int, int]:
    """Whether ``judge`` (what :func:`load_judge` returned) may score images of ``channels`` from a
    run that held out ``held_out`` of its folder: refused in one line unless it reads those
    channels, and (a folder) unless its split is the run's, else the ceiling would hold images the
    run trained on. Returns the (channels, side) the judge reads."""
    clf, meta = judge
    want_c, native = (clf.image_shape or DATASETS[dataset][1])[:2]
    if channels and channels != want_c:
        raise ConfigError(f"the images are {channels}-channel; the judge {meta.name} reads {want_c}-channel ones")
    if dataset == FOLDER and held_out is not None and held_out != meta.held_out:
        raise ConfigError(f"the run holds out {held_out} of the folder (--held_out), its judge {meta.held_out}: "
                          "the ceiling would hold images the run trained on; train the judge again with "
                          f"--held_out {held_out}")
    return want_c, native


class Evaluator:
    """Holds a judge, the real reference features and the held-out split, to score many sets."""

    def __init__(self, dataset: str, data_dir: str, ckpt_dir: str, download: bool = False,
                 skip_checksums: bool = False, judge: str | tuple = "auto", image_size: int | None = None,
                 *, channels: int | None = None, held_out: float | None = None, strict: bool = False):
        """``image_size``: the side of the images the model trains on, when it is not the judge's
        (32 for dcgan/wgan on MNIST's 28). Generated images are resized to the judge's size; so that
        a perfect generator would score like the held-out digits, the real reference and the
        held-out ceiling then take the same path: the training images at ``image_size`` (as the
        model saw them, torchvision's Resize) resized back to the judge's size the same way.
        ``channels``: the images' channels, refused in one line unless the judge reads them.
        ``held_out``: a folder run's ``--held_out``, refused unless the judge's split is the same
        (else the ceiling would hold images the run trained on)."""
        # ``judge``: a --judge value, or what load_judge returned for one.
        self.clf, self.judge = load_judge(dataset, ckpt_dir, judge, data_dir) if isinstance(judge, str) else judge
        want_c, native = check_fit(dataset, (self.clf, self.judge), channels, held_out)
        size = image_size if image_size and image_size != native else None
        self.path = f"{native}px" if size is None else \
            f"{size}px path (real images Resize({size}) as trained on, then PIL bilinear to {native})"

        def real(train: bool) -> tuple[np.ndarray, np.ndarray]:
            x, y = data_lib.load_numpy(dataset, data_dir, train=train, download=download,
                                       skip_checksums=skip_checksums, size=size)
            return (x if size is None else data_lib.resize_images(x, native)), y

        if dataset == FOLDER:
            folder = data_lib.load_folder(data_dir, size or native, want_c, strict=strict)
            splits = folder_reals(folder, self.judge.held_out)
            (train_x, train_y), (self.test_x, self.test_y) = [
                (x if size is None else data_lib.resize_images(x, native), y) for x, y in splits]
        else:
            (train_x, train_y), (self.test_x, self.test_y) = real(True), real(False)
        pick = np.random.default_rng(0).permutation(len(train_x))[:REFERENCE_SIZE]
        self.ref_labels = np.asarray(train_y)[pick]
        self.ref_feats, _ = self.clf.predict(train_x[pick])

    @property
    def judge_name(self) -> str:
        """Short name of the judge, e.g. ``shipped:mnist@a9e59873e66c``."""
        return self.judge.name

    @property
    def matched_n(self) -> int:
        """How many images a set needs to be comparable with the ceiling: the held-out split's size."""
        return len(self.test_x)

    def score(self, images: np.ndarray) -> dict:
        """Metrics of one uint8 (N, H, W, C) set (see :func:`score_set`). Images of another size
        than the judge's (a DCGAN's 32x32 for the 28x28 MNIST judge) are first resized to it by
        ``data.resize_images`` (PIL's bilinear filter, what torchvision's ``Resize`` applies)."""
        size = self.test_x.shape[1]
        if images.shape[1] != size:
            images = data_lib.resize_images(images, size)
        return score_set(self.clf, images, self.ref_feats, self.ref_labels)

    def held_out(self, n: int) -> np.ndarray:
        """``n`` held-out real images: all of them, or a fixed random subset (a test split may be
        stored sorted by class)."""
        if n >= len(self.test_x):
            return self.test_x
        return self.test_x[np.sort(np.random.default_rng(0).permutation(len(self.test_x))[:n])]

    def class_rows(self, images: np.ndarray, labels: np.ndarray) -> dict:
        """A conditional generator's images of the asked ``labels``: does the judge see the asked
        class, and is each class varied? Overall and per class: the judge's accuracy on the asked
        labels, beside its accuracy on the held-out real images (of that class: the ceiling); per
        class c, the Fréchet distance and k-NN recall of its n_c images against the real reference
        images of class c, each beside the same metric of n_c held-out real images of class c
        (n_c = min(generated, held-out) of that class: at ~100 images in 128 dimensions the
        numbers are mostly small-n bias, which the ceiling at the same n carries too)."""
        size = self.test_x.shape[1]
        if images.shape[1] != size:
            images = data_lib.resize_images(images, size)
        labels = np.asarray(labels).reshape(-1)
        feats, probs = self.clf.predict(images)
        pred = probs.argmax(1)
        held_feats, held_probs = self.clf.predict(self.test_x)
        held_pred, held_y = held_probs.argmax(1), np.asarray(self.test_y).reshape(-1)
        out = {"n": int(len(images)), "label_accuracy": float(np.mean(pred == labels)),
               "judge_held_out_accuracy": float(np.mean(held_pred == held_y)), "classes": {}}
        for c in sorted(set(labels.tolist())):
            mine, real = labels == c, held_y == c
            n = int(min(mine.sum(), real.sum()))
            row = {"n_generated": int(mine.sum()), "label_accuracy": float(np.mean(pred[mine] == c)),
                   "judge_held_out_accuracy": float(np.mean(held_pred[real] == c)) if real.any() else None,
                   "n_matched": n}
            ref = self.ref_feats[self.ref_labels == c]
            if n >= 2 and len(ref) >= 2:
                # The first n of each (the held-out split in a fixed random order: it may be sorted).
                held = held_feats[real][np.random.default_rng(c).permutation(int(real.sum()))[:n]]
                gen, want = feats[mine][:n], held
                row.update(frechet_distance=metrics.frechet_distance(gen, ref),
                           frechet_distance_ceiling=metrics.frechet_distance(want, ref),
                           recall=metrics.precision_recall(ref, gen, k=3)["recall"],
                           recall_ceiling=metrics.precision_recall(ref, want, k=3)["recall"])
            out["classes"][int(c)] = row
        return out

    def matched_rows(self, generated: dict[str, np.ndarray], ceiling: str = "held-out real (ceiling)",
                     ) -> dict[str, dict]:
        """Rows that compare sets of one size n = min(every generated set's size, the held-out
        size): each generated set's first n images, then n held-out real images. A generated set
        larger than the held-out split is also scored whole, in a row marked not comparable.
        Every row carries ``n``, ``set`` (``generated`` or ``held_out``) and ``comparable_with_ceiling``."""
        n = min([self.matched_n, *(len(x) for x in generated.values())])
        rows = {name: {**self.score(x[:n]), "set": "generated", "comparable_with_ceiling": True}
                for name, x in generated.items()}
        rows[ceiling] = {**self.score(self.held_out(n)), "set": "held_out", "comparable_with_ceiling": True}
        for name, x in generated.items():
            if len(x) > n:
                rows[f"{name}, all {len(x)} (not comparable with the ceiling: n differs)"] = {
                    **self.score(x), "set": "generated", "comparable_with_ceiling": False}
        return rows


# Issue 20's goal for a conditional generator, per member: the judge sees the asked class overall
# and in every class, and every class varies (its recall near its own held-out ceiling).
CONDITIONAL_GOALS = {"label_accuracy": 0.95, "worst_class_accuracy": 0.85, "worst_recall_ratio": 0.8}


def conditional_goals(result: dict) -> dict:
    """One member's :meth:`Evaluator.class_rows` against ``CONDITIONAL_GOALS``: its label accuracy,
    its worst class's, its worst class's recall over that class's ceiling, whether it meets each
    goal and all of them, and its *attainment*: the smallest of the three as a share of its goal
    (1.0 or more: every goal met)."""
    classes = result["classes"].values()
    values = {"label_accuracy": result["label_accuracy"],
              "worst_class_accuracy": min(c["label_accuracy"] for c in classes),
              "worst_recall_ratio": min(c["recall"] / c["recall_ceiling"] if c.get("recall_ceiling") else 0.0
                                        for c in classes)}
    met = {k: v >= CONDITIONAL_GOALS[k] for k, v in values.items()}
    return {**values, "meets": met, "meets_all": all(met.values()),
            "attainment": min(v / CONDITIONAL_GOALS[k] for k, v in values.items())}


def table(rows: dict[str, dict]) -> str:
    """Markdown table of scored rows (``n`` in every row)."""
    lines = ["| set | n | Fréchet dist. (judge's features) | classifier score | classes covered | KL to real classes "
             "| precision | recall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['n']} | {r['frechet_distance']:.3f} | {r['classifier_score']:.3f} | "
                     f"{r['classes_covered']}/{r.get('num_classes', 10)} | {r['kl_to_real']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} |")
    return "\n".join(lines)


def class_table(result: dict) -> str:
    """Markdown of :meth:`Evaluator.class_rows`: label accuracy and, per class, FD and recall each
    beside its held-out ceiling at the same n."""
    lines = [f"label accuracy {result['label_accuracy']:.3f} on {result['n']} images (the judge's own on the "
             f"held-out real images, the ceiling: {result['judge_held_out_accuracy']:.3f})", "",
             "| class | n | label accuracy | ceiling | Fréchet dist. | ceiling | recall | ceiling |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def f(v, fmt):
        return "-" if v is None else f"{v:{fmt}}"

    for c, r in result["classes"].items():
        lines.append(f"| {c} | {r['n_matched']} | {r['label_accuracy']:.3f} | {f(r['judge_held_out_accuracy'], '.3f')} | "
                     f"{f(r.get('frechet_distance'), '.2f')} | {f(r.get('frechet_distance_ceiling'), '.2f')} | "
                     f"{f(r.get('recall'), '.3f')} | {f(r.get('recall_ceiling'), '.3f')} |")
    return "\n".join(lines)


SUMMARY = ("frechet_distance", "classifier_score", "classes_covered", "kl_to_real", "precision", "recall")


def summarize(rows: list[dict], best_by: str = "fd") -> dict:
    """A population's member rows (in member order): each metric's mean and standard deviation
    across members (ddof 1), and the best member by ``best_by`` (fd: lowest Fréchet distance;
    score: highest classifier score; ties: the lower member index)."""
    out = {"members": len(rows), "best_by": best_by}
    for key in SUMMARY:
        values = np.asarray([r[key] for r in rows], np.float64)
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "min": float(values.min()), "max": float(values.max())}
    key, sign = metrics.BEST_BY[best_by]
    scores = [sign * r[key] for r in rows]
    best = int(np.argmax(scores))  # the first of equals
    out["best"] = {"member": int(rows[best].get("member", best)), key: float(rows[best][key])}
    return out


# How each summarised metric is shown: label and format.
SHOWN = {"frechet_distance": ("Fréchet dist. ↓", ".2f"), "classifier_score": ("classifier score ↑", ".3f"),
         "classes_covered": ("classes", "g"), "kl_to_real": ("KL to real ↓", ".4f"),
         "precision": ("precision", ".3f"), "recall": ("recall", ".3f")}


def population_table(summary: dict, title: str | None = None) -> str:
    """Markdown of a population summary (:func:`summarize`): each metric's mean ± std (ddof 1),
    min and max over the members, then the best member by the rule. The evaluate command prints it;
    the docs' table of eight seeds is this table of a committed evaluate JSON."""
    title = title or f"{summary['members']} members"
    lines = [f"| {title} | mean ± std (ddof 1) | min | max |", "|---|---:|---:|---:|"]
    for key, (label, f) in SHOWN.items():
        v = summary[key]
        lines.append(f"| {label} | {v['mean']:{f}} ± {v['std']:{f}} | {v['min']:{f}} | {v['max']:{f}} |")
    best = summary["best"]
    metric = [k for k in best if k != "member"][0]
    name = {"frechet_distance": "Fréchet distance", "classifier_score": "classifier score"}[metric]
    lines += ["", f"Best member by the rule `--best_by {summary['best_by']}`: member {best['member']} ({name} "
              f"{best[metric]:.2f})."]
    return "\n".join(lines)
