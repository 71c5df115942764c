"""Loss invariants of the GAN objective, and equality with the reference's BCELoss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgan import steps


def test_losses_when_d_outputs_one_half():
    zeros = jnp.zeros(32)  # logit 0 <=> D = 1/2
    assert float(steps.d_loss_from_logits(zeros, zeros)) == pytest.approx(2 * math.log(2), rel=1e-6)
    assert float(steps.g_loss_from_logits(zeros, "nonsaturating")) == pytest.approx(math.log(2), rel=1e-6)
    assert float(steps.g_loss_from_logits(zeros, "minimax")) == pytest.approx(-math.log(2), rel=1e-6)


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
    assert float(steps.d_loss_from_logits(logits[0], logits[1])) == pytest.approx(float(d_ref), rel=1e-5)
    assert float(steps.g_loss_from_logits(logits[1], "nonsaturating")) == pytest.approx(float(g_ref), rel=1e-5)
    # The paper's minimax form is E log(1 - D(G(z))) = -BCE(D(G(z)), 0).
    assert float(steps.g_loss_from_logits(logits[1], "minimax")) == pytest.approx(
        -float(bce(p_fake, zeros)), rel=1e-5)


def test_losses_stay_finite_where_d_saturates():
    huge = jnp.array([-200.0, 200.0])
    assert bool(jnp.isfinite(steps.d_loss_from_logits(huge, huge)))
    assert bool(jnp.isfinite(jax.grad(lambda l: steps.g_loss_from_logits(l, "nonsaturating"))(huge)).all())


def test_optimal_discriminator_is_pdata_over_pdata_plus_pg():
    # On a finite support, minimise the expected D loss over D's value at each point by gradient
    # descent; the minimiser must be D* = p_data / (p_data + p_g) (Goodfellow et al., Prop. 1),
    # and the minimum log 4 - 2 JSD(p_data || p_g).
    p_data = jnp.array([0.5, 0.3, 0.15, 0.05])
    p_g = jnp.array([0.1, 0.2, 0.3, 0.4])

    def expected_loss(logits):
        return jnp.sum(p_data * jax.nn.softplus(-logits)) + jnp.sum(p_g * jax.nn.softplus(logits))

    logits = jnp.zeros(4)
    grad = jax.jit(jax.grad(expected_loss))
    for _ in range(20000):
        logits = logits - 2.0 * grad(logits)
    d_star = p_data / (p_data + p_g)
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(logits)), np.asarray(d_star), atol=1e-4)
    m = (p_data + p_g) / 2
    jsd = 0.5 * jnp.sum(p_data * jnp.log(p_data / m)) + 0.5 * jnp.sum(p_g * jnp.log(p_g / m))
    assert float(expected_loss(logits)) == pytest.approx(float(math.log(4) - 2 * jsd), abs=1e-5)
    # When p_g = p_data the optimum is D = 1/2 everywhere and the loss 2 log 2.
    assert float(expected_loss(jnp.zeros(4))) == pytest.approx(2 * math.log(2))
