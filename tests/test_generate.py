"""Images out of a generator: uint8 conversion, and BatchNorm statistics that belong to the
weights being sampled (EMA weights get their own, recalibrated)."""

import jax
import numpy as np
import pytest
import torch

from benchmarks import torch_reference as ref
from jaxgan import data as data_lib
from jaxgan import generate, steps
from tests.conftest import small_config


@pytest.mark.quick
def test_to_images_inverts_normalize_for_every_pixel_value():
    values = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)  # one (C, H, W) image
    flat = np.asarray(data_lib.normalize(values.reshape(1, -1)))
    back = data_lib.to_images(flat, (1, 16, 16))
    assert back.dtype == np.uint8 and back.shape == (1, 16, 16, 1)
    np.testing.assert_array_equal(back[0, :, :, 0], values[0, 0])
    # Out-of-range outputs are clipped the way the reference's denormalize + save_image clip them.
    np.testing.assert_array_equal(data_lib.to_images(np.array([[-3.0, 3.0]]), (1, 1, 2))[0, 0, :, 0], [0, 255])


@pytest.mark.quick
def test_recalibrated_statistics_are_the_mean_of_the_batch_statistics(tmp_path):
    # Oracle: torch's BatchNorm with momentum=None keeps the cumulative average of the batch mean
    # and unbiased variance over the batches it sees: exactly what recalibration must produce.
    cfg = small_config(tmp_path)
    torch.manual_seed(0)
    tg = ref.Generator(cfg.image_shape, cfg.latent_dim, hidden=cfg.g_hidden).double()
    td = ref.Discriminator(cfg.image_shape, hidden=cfg.d_hidden)
    gan, state = steps.build(cfg)
    g_params, g_stats, _ = ref.torch_to_flax(tg, td)
    state = state.replace(g_params=g_params, g_stats=jax.tree_util.tree_map(lambda x: x * 0 + 7.0, g_stats))
    new = generate.recalibrate_stats(gan, state, batch=32, batches=5)
    for bn in ref.batchnorm_layers(tg):
        bn.momentum = None
        bn.reset_running_stats()
    tg.train()
    for key in jax.random.split(jax.random.key(0), 5):
        tg(torch.tensor(np.asarray(gan.sample_noise(key, 32)), dtype=torch.float64))
    for i, bn in enumerate(ref.batchnorm_layers(tg)):
        np.testing.assert_allclose(np.asarray(new.g_stats["norms"][i]["mean"]), bn.running_mean.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(new.g_stats["norms"][i]["var"]), bn.running_var.numpy(), rtol=1e-4, atol=1e-5)
    # The parameters are untouched; only the statistics are replaced.
    for a, b in zip(jax.tree_util.tree_leaves(new.g_params), jax.tree_util.tree_leaves(state.g_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
