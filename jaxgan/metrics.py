"""Sample-quality metrics on classifier features and predictions (pure numpy/JAX, no I/O).

- ``frechet_distance``: the Fréchet distance between Gaussians fitted to two feature sets (FID's
  formula; here on jaxgan's own classifier, so not comparable with published FID numbers).
- ``classifier_score``: exp(E_x KL(p(y|x) || p(y))), the Inception-score formula.
- ``mode_coverage``: predicted-class histogram, classes covered, KL to the real class distribution.
- ``precision_recall``: k-NN manifold precision and recall (Kynkäänniemi et al., 2019).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# "Best" by a metric, the one rule for --keep_best and a population's best member:
# name -> (metric key, sign: +1 higher is better, -1 lower is better).
BEST_BY = {"fd": ("frechet_distance", -1.0), "score": ("classifier_score", 1.0),
           "class": ("class_attainment", 1.0)}  # a conditional run's (quality.conditional_goals)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2), in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ s_b @ root_a
    tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt)


def classifier_score(probs: np.ndarray, eps: float = 1e-12) -> float:
    """exp(mean over x of KL(p(y|x) || p(y))), p(y) the mean prediction over the set."""
    p = np.asarray(probs, np.float64)
    marginal = p.mean(0, keepdims=True)
    kl = np.sum(p * (np.log(p + eps) - np.log(marginal + eps)), axis=1)
    return float(np.exp(kl.mean()))


def mode_coverage(pred_labels: np.ndarray, reference: np.ndarray, num_classes: int = 10,
                  min_share: float = 0.1) -> dict:
    """Class histogram of the predictions; a class counts as covered when it receives at least
    ``min_share`` of its fair share (N / num_classes); KL(histogram || reference distribution)."""
    counts = np.bincount(np.asarray(pred_labels, np.int64), minlength=num_classes)[:num_classes]
    hist = counts / max(counts.sum(), 1)
    ref = np.asarray(reference, np.float64)
    ref = ref / ref.sum()
    covered = int(np.sum(counts >= min_share * counts.sum() / num_classes))
    nz = hist > 0
    kl = float(np.sum(hist[nz] * np.log(hist[nz] / np.maximum(ref[nz], 1e-12))))
    return {"histogram": hist.round(6).tolist(), "classes_covered": covered,
            "coverage": covered / num_classes, "kl_to_real": kl}


@jax.jit
def _sq_dists(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.maximum(jnp.sum(x * x, 1)[:, None] + jnp.sum(y * y, 1)[None, :] - 2 * x @ y.T, 0.0)


def _kth_nn_radius(feats: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set (self excluded)."""
    f = jnp.asarray(feats, jnp.float32)
    out = []
    for i in range(0, len(f), chunk):
        d = _sq_dists(f[i:i + chunk], f)
        out.append(np.sqrt(np.asarray(jnp.sort(d, axis=1)[:, k])))  # index 0 is the point itself
    return np.concatenate(out)


def _inside(query: np.ndarray, support: np.ndarray, radii: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each query point: is it within radii[j] of some support point j?"""
    s = jnp.asarray(support, jnp.float32)
    r2 = jnp.asarray(radii, jnp.float32) ** 2
    q = jnp.asarray(query, jnp.float32)
    return np.concatenate([np.asarray(jnp.any(_sq_dists(q[i:i + chunk], s) <= r2[None, :], axis=1))
                           for i in range(0, len(q), chunk)])


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict:
    """Precision: share of fake samples inside the real k-NN manifold; recall: share of real
    samples inside the fake k-NN manifold (Kynkäänniemi et al., 2019)."""
    precision = float(_inside(fake, real, _kth_nn_radius(real, k)).mean())
    recall = float(_inside(real, fake, _kth_nn_radius(fake, k)).mean())
    return {"precision": precision, "recall": recall, "k": k}
