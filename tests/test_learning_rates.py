"""Separate learning rates for G and D (``--g_lr``, ``--d_lr``; TTUR, Heusel et al., 2017): each
defaults to ``--lr``. A population giving one per member: tests/test_population.py (its members
have their own G and D rates); a resume changing them: tests/test_cli.py."""

import jax
import numpy as np
import pytest

from jaxgan import steps
from jaxgan.config import ConfigError
from tests.conftest import leaves_equal, small_config

def one_step(cfg):
    gan, state = steps.build(cfg)
    x = jax.random.uniform(jax.random.key(5), (cfg.batch_size, 784), minval=-1, maxval=1)
    return state, jax.jit(gan.train_step)(state, x)[0]


def delta(before, after):
    return jax.tree_util.tree_map(lambda a, b: np.asarray(b, np.float64) - np.asarray(a, np.float64), before, after)


def test_g_lr_and_d_lr_set_each_networks_step(tmp_path):
    # Unset, they are --lr, bit for bit.
    _, default = one_step(small_config(tmp_path, d_dropout=0.0))
    _, explicit = one_step(small_config(tmp_path, d_dropout=0.0, g_lr=2e-4, d_lr=2e-4))
    assert leaves_equal(default, explicit)
    # D is updated first, at d_lr: --g_lr 1e-3 --d_lr 5e-5 moves D exactly as --lr 5e-5 does. Adam's
    # first step is lr * g / (|g| + eps), so with the same gradients G's step scales with g_lr.
    start, ttur = one_step(small_config(tmp_path, d_dropout=0.0, g_lr=1e-3, d_lr=5e-5))
    _, slow = one_step(small_config(tmp_path, d_dropout=0.0, lr=5e-5))
    assert leaves_equal(ttur.d_params, slow.d_params)
    got = delta(start.g_params, ttur.g_params)["out"]["kernel"]
    want = delta(start.g_params, slow.g_params)["out"]["kernel"] * (1e-3 / 5e-5)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-9)
    assert np.max(np.abs(got)) > 5e-4  # G really took a step of about g_lr
    with pytest.raises(ConfigError, match="g_lr must be positive"):
        small_config(tmp_path, g_lr=-1.0)
