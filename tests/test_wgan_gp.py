"""WGAN-GP (--model wgan_gp), the fourth family, added through the family seam alone: its gradient
penalty and the penalty's gradient against PyTorch autograd's double backward, whole training
iterations against the PyTorch loop (benchmarks/torch_dcgan.py), both in float64, then training,
exact resume, sample and evaluate as for the other families."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_dcgan as ref
from jaxgan import data as data_lib
from jaxgan import families, layers, steps
from jaxgan.config import from_dict
from jaxgan.families.wgan_gp import GP_WEIGHT, gradient_penalty
from jaxgan.formats import write_mnist
from jaxgan.trainer import train_and_evaluate
from tests.conftest import blob_images, leaves_equal, run_main

G_TINY, D_TINY, LATENT, N = (16, 8, 8, 4), (4, 8, 8, 16), 16, 8
F64 = dict(rtol=1e-8, atol=1e-10)


def tiny_config(root, **overrides):
    values = dict(model="wgan_gp", dataset="mnist", data_dir=str(root / "data"), download=False,
                  sample_dir=str(root / "samples"), logdir=str(root / "runs"), ckpt_dir=str(root / "ckpt"),
                  g_hidden=G_TINY, d_hidden=D_TINY, latent_dim=LATENT, batch_size=N, progress=False)
    values.update(overrides)
    return from_dict(values)


def test_the_family_is_the_papers_recipe(tmp_path):
    cfg = tiny_config(tmp_path)
    # Algorithm 1: Adam(1e-4, betas (0, 0.9)), n_critic 5, lambda 10; full batches, generator iterations.
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.d_steps, cfg.last_batch) == (1e-4, 0.0, 0.9, 5, "drop")
    assert GP_WEIGHT == 10.0 and cfg.family.critic and cfg.family.periods.length_flag == "gen_iters"
    gan, state = steps.build(cfg)
    # The critic has no BatchNorm, no normalisation at all: no statistics, and only convs and the head.
    assert state.d_stats == {} and sorted(state.d_params) == ["convs", "out"]
    assert gan.joint_d_pass  # per-example critic: real and fake in one pass (equal to two)
    assert "norms" in state.g_params  # G keeps DCGAN's BatchNorm


def torch_critic(conv_impl_seed=0):
    torch.manual_seed(conv_impl_seed)
    return ref.Critic(1, 32, D_TINY).double()


@pytest.mark.parametrize("conv_impl", layers.CONV_IMPLS)
def test_gradient_penalty_and_its_gradient_equal_torch_autograd(tmp_path, conv_impl):
    # The same critic weights, real and fake images and interpolation weights on both sides, float64:
    # the penalty's value, and its gradient in every critic parameter (PyTorch's double backward:
    # autograd.grad(create_graph=True), then backward through the gradient's norm).
    td = torch_critic()
    cfg = tiny_config(tmp_path, conv_impl=conv_impl)
    gan, _ = steps.build(cfg)
    params, stats = ref.critic_to_jaxgan(td, np.float64)
    rng = np.random.default_rng(0)
    real, fake = rng.uniform(-1, 1, (N, 1, 32, 32)), rng.uniform(-1, 1, (N, 1, 32, 32))
    key = jax.random.key(3)
    with jax.enable_x64(True):
        eps = np.asarray(jax.random.uniform(key, (N, 1), jnp.float64))[:, 0]
        p = jax.tree_util.tree_map(jnp.asarray, params)

        def penalty(p):
            critic = lambda x: gan.d_forward(p, stats, x, None)[0]  # noqa: E731
            return gradient_penalty(critic, jnp.asarray(real.reshape(N, -1)), jnp.asarray(fake.reshape(N, -1)), key)

        value, grads = jax.jit(jax.value_and_grad(penalty))(p)
    want = ref.gradient_penalty(td, torch.tensor(real), torch.tensor(fake), torch.tensor(eps))
    want.backward()
    assert float(value) == pytest.approx(float(want.detach()), rel=1e-10)
    assert float(value) > 1e-3  # a penalty that is not trivially zero
    want_grads, _ = ref.critic_to_jaxgan(_grads_as_module(td), np.float64)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        w = want_grads
        for k in path:
            w = w[k.key]
        # A piecewise-linear critic's grad_x D does not move with its biases (zero almost
        # everywhere; torch: None for the head's): only the kernels carry the penalty's gradient.
        if "kernel" in jax.tree_util.keystr(path):
            assert np.abs(w).max() > 0, jax.tree_util.keystr(path)
        np.testing.assert_allclose(np.asarray(g), w, err_msg=jax.tree_util.keystr(path), **F64)


def _grads_as_module(td):
    """A copy of ``td`` whose weights are its .grad (to reuse the weight-copy layout)."""
    out = ref.Critic(1, 32, D_TINY).double()
    with torch.no_grad():
        for a, b in zip(out.parameters(), td.parameters()):
            a.copy_(torch.zeros_like(b) if b.grad is None else b.grad)
    return out


def test_training_iterations_equal_the_torch_loop(tmp_path):
    # Two generator iterations of n_critic 2 (four train_steps): jaxgan's own noise and
    # interpolation weights (fold_in of each step's key) handed to the PyTorch loop; float64.
    cfg = tiny_config(tmp_path, d_steps=2)
    gan, state = steps.build(cfg)
    torch.manual_seed(1)
    tg = ref.Generator(1, 32, LATENT, G_TINY).double()
    td = ref.Critic(1, 32, D_TINY).double()
    opt_g, opt_d = ref.wgan_gp_optimizers(tg, td)
    u8 = np.random.default_rng(1).integers(0, 256, (4, N, 32 * 32), dtype=np.uint8)
    with jax.enable_x64(True):
        batches = [np.asarray(data_lib.normalize(jnp.asarray(b)), np.float64) for b in u8]
        gp, gs = ref.generator_to_jaxgan(tg, np.float64)
        dp, _ = ref.critic_to_jaxgan(td, np.float64)
        gp, gs, dp = jax.tree_util.tree_map(jnp.asarray, (gp, gs, dp))
        state = state.replace(g_params=gp, g_stats=gs, d_params=dp, g_opt=gan.g_tx.init(gp), d_opt=gan.d_tx.init(dp))
        step = jax.jit(gan.train_step)

        def streams(s):
            key = jax.random.fold_in(gan.step_key, s)
            k_zd, _, k_zg, _ = jax.random.split(key, 4)
            eps = jax.random.uniform(jax.random.fold_in(key, steps.PENALTY_STREAM), (N, 1), jnp.float64)
            z = [torch.from_numpy(np.asarray(gan.sample_noise(k, N), np.float64)) for k in (k_zd, k_zg)]
            return z[0], z[1], torch.from_numpy(np.asarray(eps)[:, 0])

        for it in range(2):
            s0 = 2 * it
            (z0, _, e0), (z1, zg, e1) = streams(s0), streams(s0 + 1)
            images = [torch.from_numpy(b).reshape(N, 1, 32, 32) for b in batches[s0:s0 + 2]]
            d_ref, g_ref = ref.wgan_gp_iteration(tg, td, opt_g, opt_d, images, [z0, z1], [e0, e1], zg, 2, GP_WEIGHT)
            for i in range(2):
                state, m = step(state, jnp.asarray(batches[s0 + i]))
                assert float(m["d_loss"]) == pytest.approx(float(d_ref[i]), rel=1e-9), (it, i)
            assert float(m["g_loss"]) == pytest.approx(float(g_ref), rel=1e-6)  # reported as float32
        want_gp, want_gs = ref.generator_to_jaxgan(tg, np.float64)
        want_dp, _ = ref.critic_to_jaxgan(td, np.float64)
        for got, want in ((state.g_params, want_gp), (state.g_stats, want_gs), (state.d_params, want_dp)):
            for path, x in jax.tree_util.tree_leaves_with_path(got):
                y = want
                for k in path:
                    y = y[k.key]
                np.testing.assert_allclose(np.asarray(x), y, err_msg=jax.tree_util.keystr(path), **F64)


def test_it_trains_resumes_exactly_samples_and_evaluates(tmp_path):
    images, labels = blob_images(64, 28, 28, 1)
    write_mnist(str(tmp_path / "data"), images[..., 0], labels)
    flags = ["--model", "wgan_gp", "--dataset", "mnist", "--no_download", "--no_progress", "--g_hidden",
             ",".join(map(str, G_TINY)), "--d_hidden", ",".join(map(str, D_TINY)), "--latent_dim", str(LATENT),
             "--batch_size", str(N), "--n_critic", "2", "--interval", "2"]
    run = run_main("jaxgan.train", *flags, "--gen_iters", "4", cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "gen iter 4/4  critic loss" in run.stdout
    folder = tmp_path / "checkpoints" / "wgan_gp" / "mnist"
    assert sorted(p.name for p in (tmp_path / "samples" / "wgan_gp" / "mnist").iterdir()) == [
        "fake_images_1.png", "fake_images_2.png"]
    assert sorted(p.name for p in folder.iterdir() if p.name.isdigit()) == ["4", "8"]
    # Resume from the first period's checkpoint: the same state as the straight run, bit for bit.
    cfg = tiny_config(tmp_path, d_steps=2, interval=2, gen_iters=4, ckpt_dir=str(tmp_path / "checkpoints"))
    straight = _restore(folder, cfg)
    copy = tmp_path / "again"
    shutil.copytree(tmp_path / "checkpoints", copy / "checkpoints")
    shutil.rmtree(copy / "checkpoints" / "wgan_gp" / "mnist" / "8")
    (copy / "data").symlink_to(tmp_path / "data")
    run = run_main("jaxgan.train", *flags, "--gen_iters", "4", "--resume", cwd=str(copy))
    assert run.returncode == 0, run.stderr
    assert "resumed from" in run.stdout and "(step 4)" in run.stdout
    assert leaves_equal(_restore(copy / "checkpoints" / "wgan_gp" / "mnist", cfg), straight)
    # sample and evaluate find the run under its family's folder.
    drawn = run_main("jaxgan.sample", "--model", "wgan_gp", "--num_samples", "8", "--out", "s.npy", cwd=str(tmp_path))
    assert drawn.returncode == 0, drawn.stderr
    assert np.load(tmp_path / "s.npy").shape == (8, 32, 32, 1)
    scored = run_main("jaxgan.evaluate", "--model", "wgan_gp", "--no_download", "--json", "e.json", cwd=str(tmp_path))
    assert scored.returncode == 0, scored.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["compared_at"].startswith("32px path") and result["generator"]["training_config"]["model"] == "wgan_gp"


def _restore(folder, cfg):
    from jaxgan import checkpoint as ckpt_lib

    cks = ckpt_lib.Checkpoints(str(folder))
    try:
        return cks.restore(steps.build(cfg, abstract=True)[1])[0]
    finally:
        cks.close()


def test_the_model_flag_lists_it():
    assert "wgan_gp" in families.names()
