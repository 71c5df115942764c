"""Images from a generator: rebuild it from a checkpoint, draw uint8 images from it.

Library code shared by ``train`` (grids, ``--eval_every``), ``sample`` and ``evaluate``.

BatchNorm when drawing: ``bn="batch"`` normalises with the statistics of the batch being drawn
(the reference never calls ``G.eval()``, so every image it shows is made that way);
``bn="running"`` uses running statistics (PyTorch's eval mode), so each image depends on its own
noise only. For a run trained with ``--g_ema``, images come from the averaged weights; their
running statistics are *recalibrated* for those weights (:func:`recalibrate_stats`) rather than
borrowed from the online generator, whose statistics belong to other weights.

A conditional run (``--conditional``) draws asked classes (:func:`draw_labelled`). With
``bn="batch"`` a batch of one class would shift G's BatchNorm statistics away from training's
(whose batches mix the classes), so G runs on mixed-label batches of the training size, their
classes balanced, and each asked image is taken from them by its class: ``--label 7 --bn batch``
means "the 7s of batches drawn as in training", not "a batch of 7s".
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import population, runs, steps
from jaxgan.config import ConfigError, from_dict, recorded

RECALIBRATION_BATCHES = 100  # batches of noise whose statistics replace the EMA weights' running ones


def load_generator(dataset: str, ckpt_dir: str, step: int | None = None, best: bool = False,
                   member: int | None = None, model: str = "mlp") -> tuple[steps.GAN, steps.TrainState, dict]:
    """Rebuild the run's models from the configuration stored in its checkpoint and restore it.
    ``model``: the run's ``--model`` (its folder: ``runs.locate``). ``best``: the checkpoint kept
    by ``--keep_best`` (``<run folder>/best``). ``member``: which member of a population (default 0; the record says which in ``record["member"]``). A run
    trained with ``--g_ema`` comes back with the averaged weights in ``g_params`` and statistics
    recalibrated for them."""
    folder = runs.locate(dataset, ckpt_dir, model, best)
    checkpoints = ckpt_lib.Checkpoints(folder)
    try:
        available = checkpoints.steps()
        if step is not None and step not in available:
            raise ckpt_lib.CheckpointError(f"no checkpoint at step {step} in {folder} (have {available})")
        record = checkpoints.read_record(step if step is not None else available[-1])
        cfg = trained_config(record)
        size = cfg.population
        if member is not None and not 0 <= member < size:
            raise ConfigError(f"--member {member}: the run has {size} member{'s' if size > 1 else ''} "
                              f"(0..{size - 1})")
        if size > 1:
            _, template = population.build(cfg, abstract=True)
        else:
            _, template = steps.build(cfg, abstract=True)
        state, record, _ = checkpoints.restore(template, step)
    finally:
        checkpoints.close()
    record["member"] = member or 0
    if size > 1:  # one member, as the solo run it is
        cfg = population.member_config(cfg, record["member"])
        state = population.member(state, record["member"])
    gan, _ = steps.build(cfg, abstract=True)
    if state.g_ema is not None:  # trained with --g_ema: sample from the averaged weights
        state = state.replace(g_params=state.g_ema)
        state = recalibrate_stats(gan, state, cfg.batch_size)
    return gan, state, record


def run_config(dataset: str, ckpt_dir: str, best: bool = False, model: str = "mlp"):
    """The configuration the run's newest checkpoint was trained with (cheap: no arrays are read)."""
    checkpoints = ckpt_lib.Checkpoints(runs.locate(dataset, ckpt_dir, model, best))
    try:
        record = checkpoints.read_record(checkpoints.steps()[-1])
    finally:
        checkpoints.close()
    return trained_config(record)


def trained_config(record: dict):
    """The Config a checkpoint's record says its run was trained with (``config.recorded``)."""
    return from_dict({k: v for k, v in recorded(record["config"]).items() if k != "resume"})


@functools.partial(jax.jit, static_argnums=(0, 3))
def _generate(gan: steps.GAN, state: steps.TrainState, z: jax.Array, use_batch_stats: bool,
              labels: jax.Array | None = None) -> jax.Array:
    # One compiled function for every call (training's --eval_every draws repeatedly).
    return gan.generate(state, z, use_batch_stats, labels)[0]


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _batch_stats(gan: steps.GAN, state: steps.TrainState, batch: int, batches: int) -> steps.Params:
    # G in training mode from zeroed averages: after one update (momentum 0.1) they hold 0.1 x
    # that batch's mean and unbiased variance; undo the factor and average over the batches.
    keys = jax.random.split(jax.random.key(0), batches)

    # A conditional G: each batch mixes the classes, balanced, as sampling draws them (draw_labelled).
    labels = jnp.arange(batch, dtype=jnp.int32) % gan.n_classes if gan.n_classes else None

    def one(key):
        z = gan.sample_noise(key, batch)
        zero = jax.tree_util.tree_map(jnp.zeros_like, state.g_stats)
        _, stats = gan.generate(state.replace(g_stats=zero), z, True, labels)
        # After one update from zero: mean' = 0.1 * batch_mean, var' = 0.1 * unbiased_var.
        return jax.tree_util.tree_map(lambda s: s / 0.1, stats)

    return jax.tree_util.tree_map(lambda s: jnp.mean(s, axis=0), jax.lax.map(one, keys))


def recalibrate_stats(gan: steps.GAN, state: steps.TrainState, batch: int,
                      batches: int = RECALIBRATION_BATCHES) -> steps.TrainState:
    """Running BatchNorm statistics that belong to ``state.g_params``: the mean, over ``batches``
    batches of fresh noise of the training batch size, of each batch's mean and unbiased variance
    (what the running averages estimate, without their lag behind changing weights)."""
    return state.replace(g_stats=_batch_stats(gan, state, max(batch, 2), batches))


def draw(gan: steps.GAN, state: steps.TrainState, num_samples: int, seed: int, bn: str,
         batch: int | None = None) -> np.ndarray:
    """``num_samples`` images as uint8 (N, H, W, C), from noise drawn with ``seed``. With
    ``batch``, G runs on chunks of that many (with ``bn="batch"`` each chunk's statistics are
    used, as in training); by default on all of them at once. A conditional G draws every class
    in turn (``balanced_labels``), as :func:`draw_labelled` draws them."""
    if gan.n_classes:
        return draw_labelled(gan, state, balanced_labels(gan, num_samples), seed, bn, batch)
    z = gan.sample_noise(jax.random.key(seed), num_samples)
    batch = batch or num_samples
    parts = []
    for i in range(0, num_samples, batch):
        zi = z[i:i + batch]
        if bn == "batch" and len(zi) < 2:  # BatchNorm needs two: borrow the previous row
            parts.append(np.asarray(_generate(gan, state, z[i - 1:i + 1], True))[1:])
            continue
        parts.append(np.asarray(_generate(gan, state, zi, bn == "batch")))
    return data_lib.to_images(np.concatenate(parts), gan.image_shape)


def balanced_labels(gan: steps.GAN, n: int) -> np.ndarray:
    """``n`` labels taking every class of a conditional run in turn: 0, 1, ..., C-1, 0, 1, ..."""
    return np.arange(n, dtype=np.int32) % gan.n_classes


def draw_labelled(gan: steps.GAN, state: steps.TrainState, labels: np.ndarray, seed: int, bn: str,
                  batch: int | None = None) -> np.ndarray:
    """Images of the asked classes ``labels`` (int (N,)), in that order, from a conditional G, as
    uint8 (N, H, W, C). ``bn="running"``: each image from its own noise and class, ``batch`` (default
    1,000) at a time. ``bn="batch"``: G runs on batches of ``batch`` images (default: the training
    batch size) whose classes are balanced (each class as often as any other, rotating from batch
    to batch) and shuffled, as a training batch mixes them; each asked image is the next one of its
    class from those batches, and the images are grouped afterwards into the asked order. Batch
    ``i``'s noise and classes come from ``fold_in(key(seed), i)``."""
    labels = np.asarray(labels, np.int32).reshape(-1)
    classes = gan.n_classes
    if not labels.size:
        raise ConfigError("no labels to draw")
    if not (labels.min() >= 0 and labels.max() < classes):
        raise ConfigError(f"labels must be classes 0..{classes - 1}, got {sorted(set(labels.tolist()))}")
    key = jax.random.key(seed)
    if bn != "batch":
        size = batch or 1000
        z = gan.sample_noise(key, len(labels))
        parts = [np.asarray(_generate(gan, state, z[i:i + size], False, jnp.asarray(labels[i:i + size])))
                 for i in range(0, len(labels), size)]
        return data_lib.to_images(np.concatenate(parts), gan.image_shape)
    size = max(batch or gan.batch_size, 2)  # BatchNorm needs two
    need = np.bincount(labels, minlength=classes)
    pools: list[list[np.ndarray]] = [[] for _ in range(classes)]
    i = 0
    while any(len(pools[c]) < need[c] for c in range(classes)):
        k_z, k_y = jax.random.split(jax.random.fold_in(key, i))
        y = np.asarray(jax.random.permutation(k_y, (np.arange(size) + i * size) % classes)).astype(np.int32)
        fake = np.asarray(_generate(gan, state, gan.sample_noise(k_z, size), True, jnp.asarray(y)))
        for c in range(classes):
            pools[c].extend(fake[y == c][:need[c] - len(pools[c])])
        i += 1
    taken = [0] * classes
    out = []
    for c in labels:
        out.append(pools[c][taken[c]])
        taken[c] += 1
    return data_lib.to_images(np.stack(out), gan.image_shape)
