"""The GAN losses against values computed without jaxgan: closed forms in float64 numpy written out
here, PyTorch's BCELoss, and Goodfellow et al.'s optimal discriminator (Prop. 1)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgan import losses

# Deliberately asymmetric: swapping the real and fake terms, or a sign, changes every value below.
REAL = np.array([2.0, -1.0, 0.5, 3.0])
FAKE = np.array([-3.0, 0.25, 1.5, -0.5])


def log1p_exp(x):
    """log(1 + e^x) in float64, the closed form every expected value below is built from."""
    return np.log1p(np.exp(np.asarray(x, np.float64)))


def f32(x):
    return jnp.asarray(x, jnp.float32)


def test_losses_when_d_outputs_one_half():
    zeros = jnp.zeros(32)  # logit 0 <=> D = 1/2
    assert float(losses.bce_d_loss(zeros, zeros)) == pytest.approx(2 * math.log(2), rel=1e-6)
    assert float(losses.bce_g_loss(zeros, "nonsaturating")) == pytest.approx(math.log(2), rel=1e-6)
    assert float(losses.bce_g_loss(zeros, "minimax")) == pytest.approx(-math.log(2), rel=1e-6)


@pytest.mark.quick
def test_losses_equal_their_closed_forms():
    # L_D = mean(-log sigmoid(r)) + mean(-log(1 - sigmoid(f))) = mean(log(1+e^-r)) + mean(log(1+e^f));
    # non-saturating L_G = mean(log(1+e^-f)); minimax L_G = mean(log(1 - sigmoid(f))) = -mean(log(1+e^f)).
    d_want = log1p_exp(-REAL).mean() + log1p_exp(FAKE).mean()
    assert float(losses.bce_d_loss(f32(REAL), f32(FAKE))) == pytest.approx(d_want, rel=1e-6)
    assert float(losses.bce_g_loss(f32(FAKE), "nonsaturating")) == pytest.approx(
        log1p_exp(-FAKE).mean(), rel=1e-6)
    assert float(losses.bce_g_loss(f32(FAKE), "minimax")) == pytest.approx(-log1p_exp(FAKE).mean(), rel=1e-6)


def test_loss_gradients_equal_their_closed_forms():
    # d/dl log(1+e^-l) = -(1 - sigmoid(l)), d/dl log(1+e^l) = sigmoid(l); each term is a batch mean,
    # so every gradient carries 1/n. The two G losses differ exactly here: the non-saturating
    # gradient stays near -1/n where D rejects the fake (l << 0), the minimax one vanishes.
    n = len(FAKE)

    def sig(x):
        return 1 / (1 + np.exp(-np.asarray(x, np.float64)))

    g_real, g_fake = jax.grad(losses.bce_d_loss, argnums=(0, 1))(f32(REAL), f32(FAKE))
    np.testing.assert_allclose(np.asarray(g_real), -(1 - sig(REAL)) / n, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g_fake), sig(FAKE) / n, rtol=1e-5)
    ns = jax.grad(lambda l: losses.bce_g_loss(l, "nonsaturating"))(f32(FAKE))
    np.testing.assert_allclose(np.asarray(ns), -(1 - sig(FAKE)) / n, rtol=1e-5)
    mm = jax.grad(lambda l: losses.bce_g_loss(l, "minimax"))(f32(FAKE))
    np.testing.assert_allclose(np.asarray(mm), -sig(FAKE) / n, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_losses_equal_reference_bce(seed):
    logits = jax.random.normal(jax.random.key(seed), (2, 64)) * 4
    real, fake = np.asarray(logits[0]), np.asarray(logits[1])
    bce = torch.nn.BCELoss()
    # The reference in float64: in float32, BCE of a rounded sigmoid loses digits that the
    # logit form keeps (that is why jaxgan uses it), so float64 is the fair yardstick.
    p_real = torch.sigmoid(torch.tensor(real, dtype=torch.float64))
    p_fake = torch.sigmoid(torch.tensor(fake, dtype=torch.float64))
    ones, zeros = torch.ones(64, dtype=torch.float64), torch.zeros(64, dtype=torch.float64)
    d_ref = bce(p_real, ones) + bce(p_fake, zeros)
    g_ref = bce(p_fake, ones)
    assert float(losses.bce_d_loss(logits[0], logits[1])) == pytest.approx(float(d_ref), rel=1e-5)
    assert float(losses.bce_g_loss(logits[1], "nonsaturating")) == pytest.approx(float(g_ref), rel=1e-5)
    # The paper's minimax form is E log(1 - D(G(z))) = -BCE(D(G(z)), 0).
    assert float(losses.bce_g_loss(logits[1], "minimax")) == pytest.approx(
        -float(bce(p_fake, zeros)), rel=1e-5)


def test_losses_stay_finite_and_exact_where_d_saturates():
    # There float32 sigmoid rounds to exactly 0 or 1 and log(D) would be -inf (PyTorch's BCELoss
    # clamps it to -100); the logit form still gives log(1 + e^200) = 200 (+ e^-200).
    real, fake = f32([-200.0, 200.0]), f32([200.0, -200.0])
    assert float(losses.bce_d_loss(real, fake)) == pytest.approx(200.0, rel=1e-6)
    assert float(losses.bce_g_loss(fake, "nonsaturating")) == pytest.approx(100.0, rel=1e-6)
    grad = jax.grad(lambda l: losses.bce_g_loss(l, "nonsaturating"))(fake)
    np.testing.assert_allclose(np.asarray(grad), [0.0, -0.5], atol=1e-7)


@pytest.mark.quick
def test_optimal_discriminator_is_pdata_over_pdata_plus_pg():
    # Goodfellow et al., Prop. 1: on a finite support, the D minimising E_data[-log D] +
    # E_g[-log(1 - D)] is D* = p_data / (p_data + p_g), with minimum log 4 - 2 JSD(p_data || p_g).
    # Expectations are batch means here: point i appears in the real batch count_data[i] times and
    # in the fake batch count_g[i] times, so jaxgan's batch loss IS the expected loss.
    count_data, count_g = np.array([10, 6, 3, 1]), np.array([2, 4, 6, 8])
    p_data, p_g = count_data / 20, count_g / 20  # both batches hold 20 samples
    support = np.arange(4)
    real_idx, fake_idx = np.repeat(support, count_data), np.repeat(support, count_g)

    def batch_loss(logits):  # one logit per support point: D's free value there
        return losses.bce_d_loss(logits[real_idx], logits[fake_idx])

    d_star = p_data / (p_data + p_g)
    m = (p_data + p_g) / 2
    jsd = 0.5 * np.sum(p_data * np.log(p_data / m)) + 0.5 * np.sum(p_g * np.log(p_g / m))
    logit_star = f32(np.log(d_star / (1 - d_star)))
    assert float(batch_loss(logit_star)) == pytest.approx(math.log(4) - 2 * jsd, rel=1e-6)
    # D* is a stationary point of jaxgan's loss, and the loss (convex in the logits) is larger
    # everywhere around it; D* swapped to p_g / (p_data + p_g) is not the minimiser.
    np.testing.assert_allclose(np.asarray(jax.grad(batch_loss)(logit_star)), 0.0, atol=1e-6)
    for step in np.concatenate([np.eye(4), -np.eye(4)]) * 0.05:
        assert float(batch_loss(logit_star + f32(step))) > float(batch_loss(logit_star))
    assert float(batch_loss(-logit_star)) > float(batch_loss(logit_star)) + 0.1
    # Gradient descent on the loss from D = 1/2 reaches D*.
    logits = jnp.zeros(4)
    grad = jax.jit(jax.grad(batch_loss))
    for _ in range(3000):
        logits = logits - 5.0 * grad(logits)
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(logits)), d_star, atol=1e-4)
    # With D fixed at D*, the minimax G loss E_g log(1 - D*) plus E_data log D* is the virtual
    # criterion C(G) = -log 4 + 2 JSD (Thm. 1), i.e. minus the optimal D loss.
    e_log_d = np.sum(p_data * np.log(d_star))
    assert e_log_d + float(losses.bce_g_loss(logit_star[fake_idx], "minimax")) == pytest.approx(
        -math.log(4) + 2 * jsd, rel=1e-5)
