"""The sample-quality formulas of jaxgan.metrics on cases whose answers are known in closed form."""

import math

import numpy as np
import pytest

from jaxgan import metrics


def with_moments(mean, cov, n=500, seed=0):
    """n points whose sample mean and (unbiased) sample covariance are exactly ``mean`` and ``cov``
    (to rounding): standard normals, whitened exactly, then coloured by cov's Cholesky factor."""
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    x = np.random.default_rng(seed).normal(size=(n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return x @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_of_diagonal_gaussians_is_mean_gap_plus_std_gap():
    # Commuting (diagonal) covariances: FD = ||mu_a - mu_b||^2 + sum_i (sigma_a,i - sigma_b,i)^2.
    mu_a, sd_a = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 2.0, 0.5, 3.0])
    mu_b, sd_b = np.array([1.0, -1.0, -2.0, 0.0]), np.array([2.0, 0.5, 0.5, 1.0])
    a, b = with_moments(mu_a, np.diag(sd_a**2)), with_moments(mu_b, np.diag(sd_b**2), seed=1)
    want = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)  # 1+4+0+0.25 + 1+2.25+0+4 = 12.5
    assert metrics.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    assert metrics.frechet_distance(b, a) == pytest.approx(want, rel=1e-9)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.quick
def test_frechet_distance_of_non_commuting_2d_gaussians_equals_the_closed_form():
    # For 2x2 positive definite M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)). With
    # M = S_a^1/2 S_b S_a^1/2: tr M = tr(S_a S_b), det M = det S_a det S_b, so
    # FD = ||dmu||^2 + tr S_a + tr S_b - 2 sqrt(tr(S_a S_b) + 2 sqrt(det S_a det S_b)).
    s_a = np.array([[2.0, 0.8], [0.8, 1.0]])
    s_b = np.array([[1.0, -0.5], [-0.5, 3.0]])  # S_a S_b != S_b S_a
    mu_a, mu_b = np.array([0.5, -1.0]), np.array([-0.5, 1.0])
    tr_sqrt = math.sqrt(np.trace(s_a @ s_b) + 2 * math.sqrt(np.linalg.det(s_a) * np.linalg.det(s_b)))
    want = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt
    got = metrics.frechet_distance(with_moments(mu_a, s_a), with_moments(mu_b, s_b, seed=1))
    assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("n_classes", [2, 4, 10])
def test_classifier_score_of_confident_predictions_spread_evenly_is_the_class_count(n_classes):
    one_hot = np.eye(n_classes)[np.arange(100 * n_classes) % n_classes]
    assert metrics.classifier_score(one_hot) == pytest.approx(n_classes, rel=1e-9)


def test_classifier_score_of_identical_predictions_is_one():
    for row in ([0.7, 0.2, 0.1], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]):
        assert metrics.classifier_score(np.tile(row, (50, 1))) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.quick
def test_classifier_score_of_uneven_and_of_soft_predictions():
    # Confident predictions, a quarter on class 0: KL(onehot || marginal) = -log q_y, whose mean
    # is the entropy H(1/4, 3/4), so the score is exp(H).
    uneven = np.eye(2)[np.r_[np.zeros(25, int), np.ones(75, int)]]
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert metrics.classifier_score(uneven) == pytest.approx(math.exp(h), rel=1e-9)
    # Soft predictions (a, 1-a) and (1-a, a), half each: marginal (1/2, 1/2), every KL is
    # log 2 - H(a, 1-a), so the score is 2 exp(-H(a)).
    a = 0.9
    soft = np.array([[a, 1 - a], [1 - a, a]] * 30)
    h_a = -(a * math.log(a) + (1 - a) * math.log(1 - a))
    assert metrics.classifier_score(soft) == pytest.approx(2 * math.exp(-h_a), rel=1e-9)


@pytest.mark.quick
def test_mode_coverage_on_a_constructed_histogram():
    counts = [40, 30, 20, 5, 3, 1, 1, 0, 0, 0]  # 100 predictions; a fair share is 10
    labels = np.repeat(np.arange(10), counts)
    np.random.default_rng(0).shuffle(labels)
    hist = np.array(counts) / 100
    uniform = metrics.mode_coverage(labels, np.ones(10))
    assert uniform["histogram"] == pytest.approx(hist.tolist())
    # min_share 0.1: a class is covered with >= 1 prediction -> 7 classes.
    assert uniform["classes_covered"] == 7 and uniform["coverage"] == pytest.approx(0.7)
    nz = hist > 0
    assert uniform["kl_to_real"] == pytest.approx(np.sum(hist[nz] * np.log(hist[nz] / 0.1)), rel=1e-9)
    # min_share 0.5: >= 5 predictions -> 40, 30, 20, 5 (5 counts, exactly at the threshold).
    half = metrics.mode_coverage(labels, np.ones(10), min_share=0.5)
    assert half["classes_covered"] == 4 and half["coverage"] == pytest.approx(0.4)
    # KL against a non-uniform real distribution (given as counts; normalised by the metric).
    real_counts = np.array([10, 10, 10, 10, 10, 10, 10, 10, 10, 910], np.float64)
    skewed = metrics.mode_coverage(labels, real_counts)
    q = real_counts / 1000
    assert skewed["kl_to_real"] == pytest.approx(np.sum(hist[nz] * np.log(hist[nz] / q[nz])), rel=1e-9)
    # Every class equally often, against the uniform distribution: full coverage, KL 0.
    every = metrics.mode_coverage(np.arange(1000) % 10, np.ones(10))
    assert every["coverage"] == 1.0 and every["kl_to_real"] == pytest.approx(0.0, abs=1e-12)


def line(xs):
    """Points (x, 0) in the plane: integer coordinates keep every squared distance exact."""
    return np.stack([np.asarray(xs, np.float64), np.zeros(len(xs))], 1)


# Real points at x = 0..9 on a line. With k = 3 (self excluded) the k-NN radius is 3 at both ends
# (0 -> 3, 9 -> 6) and 2 inside (4 -> 2 or 6), so the real manifold is the union of
# disc(0, 3), disc(9, 3) and disc(i, 2) for i = 1..8.
REAL_LINE = line(range(10))
# Inside (boundaries included): (-3, 0), (0, 3), (12, 0) at distance 3 from an end point,
# (4.5, 1.5) at 1.58 from (4, 0). Outside: (-4, 0), (5, 3) (3 from (5, 0), 5.8 from (0, 0)),
# (50, 50).
PROBES = np.array([[-3, 0], [0, 3], [12, 0], [4.5, 1.5], [-4, 0], [5, 3], [50, 50]], np.float64)


def test_precision_counts_fakes_inside_the_real_k_nn_manifold():
    pr = metrics.precision_recall(REAL_LINE, PROBES, k=3)
    assert pr["precision"] == pytest.approx(4 / 7)


def test_recall_counts_reals_inside_the_fake_k_nn_manifold():
    pr = metrics.precision_recall(PROBES, REAL_LINE, k=3)
    assert pr["recall"] == pytest.approx(4 / 7)


@pytest.mark.quick
def test_a_generator_covering_half_the_line_is_precise_with_recall_eight_tenths():
    # Fake points 0..4: radii 3, 2, 2, 2, 3, so the fake manifold reaches x = 7 on the line:
    # reals 0..7 are inside (recall 8/10); every fake lies on the real line (precision 1).
    pr = metrics.precision_recall(REAL_LINE, line(range(5)), k=3)
    assert pr["precision"] == 1.0 and pr["recall"] == pytest.approx(0.8)
    # Far away from each other: nothing inside either manifold.
    far = metrics.precision_recall(REAL_LINE, line(range(5)) + 100.0, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
