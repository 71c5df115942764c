"""A small CNN per dataset, trained by jaxgan on the real training split: the feature space and
label predictor for the sample-quality metrics (no pretrained Inception weights can be fetched).

Conv(32, 3x3) -> ReLU -> MaxPool 2 -> Conv(64, 3x3) -> ReLU -> MaxPool 2 -> Dense(128) -> ReLU
(the 128 features) -> Dense(10).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import models


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


@dataclass(frozen=True)
class Classifier:
    graph: nnx.GraphDef
    params: dict
    test_accuracy: float

    def predict(self, images_u8: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, H, W, C) -> (features (N, 128), class probabilities (N, 10))."""
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
          log=print) -> Classifier:
    """Adam(1e-3) with cross-entropy on the training split; accuracy measured on the test split."""
    model = CNN(image_shape, rngs=nnx.Rngs(seed))
    graph, params, _ = models.split(model)
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
    _, probs = clf.predict(test_images)
    acc = float(np.mean(probs.argmax(1) == test_labels))
    return Classifier(graph, params, acc)


def save(clf: Classifier, ckpt_dir: str, dataset: str, extra: dict) -> str:
    cks = ckpt_lib.Checkpoints(folder(ckpt_dir, dataset), keep=1)
    try:
        step = (cks.steps() or [0])[-1] + 1
        return cks.save(step, clf.params, {"test_accuracy": clf.test_accuracy, **extra})
    finally:
        cks.close()


def load(ckpt_dir: str, dataset: str, image_shape: tuple[int, int, int]) -> Classifier:
    """The newest saved classifier for ``dataset``; CheckpointError with a hint if there is none."""
    path = folder(ckpt_dir, dataset)
    if not os.path.isdir(path):
        raise ckpt_lib.CheckpointError(
            f"no classifier for {dataset} in {path}; train one with "
            f"`python -m jaxgan.evaluate --train-classifier --dataset {dataset} --ckpt_dir {ckpt_dir}`")
    graph, template, _ = models.split(CNN(image_shape, rngs=nnx.Rngs(0)))
    cks = ckpt_lib.Checkpoints(path, keep=1)
    try:
        restored = cks.restore_newest_good(template, warn=lambda m: None)
    finally:
        cks.close()
    if restored is None:
        raise ckpt_lib.CheckpointError(f"no classifier checkpoint in {path}")
    params, record, _ = restored
    return Classifier(graph, params, float(record["test_accuracy"]))
