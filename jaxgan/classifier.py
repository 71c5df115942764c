"""A small CNN per dataset: the feature space and label predictor ("the judge") of the
sample-quality metrics (no pretrained Inception weights can be fetched).

Conv(32, 3x3) -> ReLU -> MaxPool 2 -> Conv(64, 3x3) -> ReLU -> MaxPool 2 -> Dense(128) -> ReLU
(the 128 features) -> Dense(classes: 10 for the built-in datasets).

Two kinds of judge: *shipped* ones, whose weights come inside the package (``jaxgan/judges/``,
an ``.npz`` of the parameter tree whose SHA-256 is pinned in ``jaxgan.judges.SHIPPED`` and checked
at every load), so that two users' numbers are comparable; and a user's *own*, trained with
``python -m jaxgan.evaluate --train_classifier`` and saved with Orbax under
``<ckpt_dir>/classifier/<dataset>``. A judge's SHA-256 is that of its parameters written as the
shipped ``.npz`` (:func:`to_npz_bytes`), so an own judge's fingerprint reads like a shipped one's.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import io
import os
import zipfile
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import layers


class CNN(nnx.Module):
    def __init__(self, image_shape: tuple[int, int, int], num_classes: int = 10, *, rngs: nnx.Rngs):
        c, h, w = image_shape
        self.conv1 = nnx.Conv(c, 32, (3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, (3, 3), padding="SAME", rngs=rngs)
        self.fc = nnx.Linear(64 * (h // 4) * (w // 4), 128, rngs=rngs)
        self.head = nnx.Linear(128, num_classes, rngs=rngs)

    def features(self, x_hwc: jax.Array) -> jax.Array:
        h = nnx.max_pool(jax.nn.relu(self.conv1(x_hwc)), (2, 2), (2, 2))
        h = nnx.max_pool(jax.nn.relu(self.conv2(h)), (2, 2), (2, 2))
        return jax.nn.relu(self.fc(h.reshape(h.shape[0], -1)))

    def __call__(self, x_hwc: jax.Array) -> jax.Array:
        return self.head(self.features(x_hwc))


class JudgeError(ckpt_lib.CheckpointError):
    """A shipped judge's file is missing, damaged or not the one the package pins (one line)."""


@dataclass(frozen=True)
class Classifier:
    graph: nnx.GraphDef
    params: dict
    test_accuracy: float
    train_images: int = 0  # size of the training set it learned from (0: not recorded)
    test_images: int = 0  # size of the held-out set its test accuracy was measured on
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) it reads (None: not recorded)
    held_out: float | None = None  # a folder's judge: the fraction of the folder it held out (its record's)

    def predict(self, images_u8: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, H, W, C) -> (features (N, 128), class probabilities (N, classes))."""
        feats, probs = [], []
        for i in range(0, len(images_u8), batch):
            f, p = _predict(self.graph, self.params, jnp.asarray(images_u8[i:i + batch]))
            feats.append(np.asarray(f))
            probs.append(np.asarray(p))
        return np.concatenate(feats), np.concatenate(probs)


@functools.partial(jax.jit, static_argnums=0)
def _predict(graph, params, batch_u8):
    model = nnx.merge(graph, params)
    f = model.features(data_lib.normalize(batch_u8))
    return f, jax.nn.softmax(model.head(f))


def folder(ckpt_dir: str, dataset: str) -> str:
    return os.path.join(ckpt_dir, "classifier", dataset)


def train(images: np.ndarray, labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray,
          image_shape: tuple[int, int, int], epochs: int = 5, batch_size: int = 128, seed: int = 0,
          log=print, num_classes: int | None = None) -> Classifier:
    """Adam(1e-3) with cross-entropy on the training split; accuracy measured on the test split.
    ``num_classes``: the dataset's class count (default: the largest label + 1, of either split)."""
    if num_classes is None:
        num_classes = int(max(np.max(labels), np.max(test_labels, initial=0))) + 1
    model = CNN(image_shape, num_classes, rngs=nnx.Rngs(seed))
    graph, params, _ = layers.split(model)
    tx = optax.adam(1e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x_u8, y):
        def loss_fn(p):
            logits = nnx.merge(graph, p)(data_lib.normalize(x_u8))
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    rng = np.random.default_rng(seed)
    steps = max(1, len(images) // batch_size)
    for epoch in range(epochs):
        order = rng.permutation(len(images))
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            params, opt, loss = step(params, opt, jnp.asarray(images[idx]), jnp.asarray(labels[idx]))
        log(f"classifier epoch {epoch + 1}/{epochs}: loss {float(loss):.4f}")
    clf = Classifier(graph, params, 0.0)
    return Classifier(graph, params, accuracy(clf, test_images, test_labels), len(images), len(test_images),
                      tuple(image_shape))


def accuracy(clf: Classifier, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``images`` whose predicted class is their label."""
    _, probs = clf.predict(images)
    return float(np.mean(probs.argmax(1) == np.asarray(labels)))


def save(clf: Classifier, ckpt_dir: str, dataset: str, extra: dict | None = None) -> str:
    """Save an own judge with Orbax under ``<ckpt_dir>/classifier/<dataset>``; returns the path.
    ``extra``: more facts for its record (a folder's judge: its held-out fraction and class names)."""
    cks = ckpt_lib.Checkpoints(folder(ckpt_dir, dataset), keep=1)
    try:
        step = (cks.steps() or [0])[-1] + 1
        shape = list(clf.image_shape) if clf.image_shape else None
        return cks.save(step, clf.params, {"test_accuracy": clf.test_accuracy, "train_images": clf.train_images,
                                           "test_images": clf.test_images, "num_classes": num_classes(clf.params),
                                           "image_shape": shape, **(extra or {})})
    finally:
        cks.close()


def load(ckpt_dir: str, dataset: str, image_shape: tuple[int, int, int] | None = None,
         hint: str | None = None) -> Classifier:
    """The newest saved classifier for ``dataset``; CheckpointError with a hint if there is none.
    ``image_shape``: the images it reads (None: the one its record holds, as a folder's judge's).
    ``hint``: the --train_classifier flags that name the dataset (default ``--dataset <dataset>``)."""
    path = folder(ckpt_dir, dataset)
    if not os.path.isdir(path):
        raise ckpt_lib.CheckpointError(
            f"no classifier for {dataset} in {path}; train one with "
            f"`python -m jaxgan.evaluate --train_classifier {hint or '--dataset ' + dataset} --ckpt_dir {ckpt_dir}`")
    cks = ckpt_lib.Checkpoints(path, keep=1)
    try:
        steps = cks.steps()
        meta = cks.read_record(steps[-1]) if steps else {}
        # The head's size is the dataset's class count, recorded beside the parameters (10 before it was).
        classes = int(meta.get("num_classes", 10))
        image_shape = image_shape or tuple(meta.get("image_shape") or ())
        if len(image_shape) != 3:
            raise ckpt_lib.CheckpointError(f"the classifier in {path} does not record the images it reads")
        graph, template = _template(tuple(image_shape), classes)
        restored = cks.restore_newest_good(template, warn=lambda m: None)
    finally:
        cks.close()
    if restored is None:
        raise ckpt_lib.CheckpointError(f"no classifier checkpoint in {path}")
    params, record, _ = restored
    return Classifier(graph, params, float(record["test_accuracy"]), int(record.get("train_images", 0)),
                      int(record.get("test_images", 0)), tuple(image_shape), record.get("held_out"))


def record(ckpt_dir: str, dataset: str) -> dict:
    """The record saved beside ``dataset``'s own judge ({} when there is none)."""
    path = folder(ckpt_dir, dataset)
    if not os.path.isdir(path):
        return {}
    cks = ckpt_lib.Checkpoints(path, keep=1)
    try:
        steps = cks.steps()
        return cks.read_record(steps[-1]) if steps else {}
    finally:
        cks.close()


# --- The published form: an .npz of the parameter tree, byte-for-byte reproducible. ---

def _template(image_shape: tuple[int, int, int], classes: int = 10) -> tuple[nnx.GraphDef, dict]:
    # Shapes only: nothing is initialised just to be overwritten.
    graph, params, _ = layers.split(nnx.eval_shape(lambda: CNN(image_shape, classes, rngs=nnx.Rngs(0))))
    return graph, params


def num_classes(params: dict) -> int:
    """The class count of a judge's parameters: the width of its head."""
    return int(np.shape(params["head"]["bias"])[-1])


def _leaf_names(tree: dict) -> tuple[list[str], list, jax.tree_util.PyTreeDef]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    names = ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in leaves]
    return names, [leaf for _, leaf in leaves], treedef


def to_npz_bytes(params: dict) -> bytes:
    """The parameter tree as an uncompressed .npz (one ``conv1/kernel``-style member per array, in
    tree order, float32) with fixed zip timestamps: equal parameters give equal bytes."""
    names, leaves, _ = _leaf_names(params)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, leaf in zip(names, leaves):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(np.asarray(leaf, np.float32)),
                                      allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buf.getvalue()


def sha256(clf: Classifier) -> str:
    """The judge's fingerprint: SHA-256 of :func:`to_npz_bytes` of its parameters."""
    return hashlib.sha256(to_npz_bytes(clf.params)).hexdigest()


def from_npz_bytes(blob: bytes, image_shape: tuple[int, int, int], where: str) -> tuple[nnx.GraphDef, dict]:
    """Inverse of :func:`to_npz_bytes`, checked against the CNN's own shapes (JudgeError if not)."""
    graph, template = _template(image_shape)
    names, shapes, treedef = _leaf_names(template)
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            if sorted(z.files) != sorted(names):
                raise JudgeError(f"{where} holds arrays {sorted(z.files)}, expected {sorted(names)}")
            arrays = [z[n] for n in names]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise JudgeError(f"{where} is not a readable judge file ({type(e).__name__})") from None
    for name, arr, want in zip(names, arrays, shapes):
        if arr.shape != want.shape or arr.dtype != np.float32:
            raise JudgeError(f"{where}: {name} is {arr.dtype}{list(arr.shape)}, expected float32{list(want.shape)}")
    return graph, jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in arrays])


def save_npz(clf: Classifier, path: str) -> str:
    """Write ``clf``'s parameters as a judge file; returns its SHA-256."""
    blob = to_npz_bytes(clf.params)
    with open(path, "wb") as f:
        f.write(blob)
    return hashlib.sha256(blob).hexdigest()


def load_npz(path: str, expected_sha256: str, image_shape: tuple[int, int, int], test_accuracy: float,
             train_images: int = 0, test_images: int = 0) -> Classifier:
    """A judge file, refused in one line (naming the file) unless its SHA-256 is ``expected_sha256``."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise JudgeError(f"cannot read judge file {path}: {e.strerror}") from None
    got = hashlib.sha256(blob).hexdigest()
    if got != expected_sha256:
        raise JudgeError(f"judge file {path} has SHA-256 {got[:16]}..., expected {expected_sha256[:16]}...: "
                         "it is damaged or altered; reinstall jaxgan (or regenerate it with scripts/train_judge.py)")
    graph, params = from_npz_bytes(blob, image_shape, path)
    return Classifier(graph, params, test_accuracy, train_images, test_images, tuple(image_shape))


def shipped(dataset: str) -> dict | None:
    """The registry entry of ``dataset``'s shipped judge (file, sha256, sizes, accuracy), or None."""
    from jaxgan.judges import SHIPPED

    return SHIPPED.get(dataset)


def shipped_path(dataset: str) -> str:
    entry = shipped(dataset)
    if entry is None:
        raise JudgeError(f"jaxgan ships no judge for {dataset}")
    return str(importlib.resources.files("jaxgan.judges") / entry["file"])


def load_shipped(dataset: str, image_shape: tuple[int, int, int], path: str | None = None) -> Classifier:
    """``dataset``'s shipped judge, its file's SHA-256 checked against the pinned one. ``path``
    reads another copy of the file instead (still checked against the pinned SHA-256)."""
    entry = shipped(dataset)
    if entry is None:
        raise JudgeError(f"jaxgan ships no judge for {dataset}")
    return load_npz(path or shipped_path(dataset), entry["sha256"], image_shape, float(entry["test_accuracy"]),
                    int(entry["train_images"]), int(entry["test_images"]))
