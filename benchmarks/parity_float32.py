"""How far jaxgan's own DCGAN and WGAN training steps land from the PyTorch loops run in float64,
after three iterations from the same weights, batches and noise: jaxgan in float32 (what it trains
in) and in float64 (where tests/test_zoo.py holds it to 1e-9).

    python -m benchmarks.parity_float32 --json benchmarks/results/parity_dcgan_wgan.json

jaxgan's side is the trainer's own ``GAN.train_step`` (``jaxgan.steps.build``); the PyTorch side
is ``benchmarks/torch_dcgan.py``'s ``dcgan_iteration`` / ``wgan_iteration``, handed the noise
jaxgan's step draws (``fold_in(step_key, step)``). Writes the JSON (and prints it).
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import torch

from benchmarks import torch_dcgan as ref
from jaxgan import data as data_lib
from jaxgan import steps
from jaxgan.config import OneLineParser, from_dict

G_SMALL, D_SMALL = (64, 32, 16, 8), (8, 16, 32, 64)
ITERATIONS, N_CRITIC, CLIP = 3, 3, 0.01


def _config(model: str, batch: int, latent: int, g_hidden, d_hidden):
    channels = {"dcgan": "mnist", "wgan": "cifar10"}[model]
    values = dict(model=model, dataset=channels, data_dir="unused", download=False, batch_size=batch,
                  g_hidden=tuple(g_hidden), d_hidden=tuple(d_hidden), latent_dim=latent, progress=False)
    if model == "wgan":
        values["d_steps"] = N_CRITIC
    return from_dict(values)


def _noise(gan, step: int, n: int) -> list[torch.Tensor]:
    """The noise jaxgan's train_step draws at ``step`` for D and for G, as float64 tensors."""
    k_zd, _, k_zg, _ = jax.random.split(jax.random.fold_in(gan.step_key, step), 4)
    return [torch.from_numpy(np.asarray(gan.sample_noise(k, n), np.float64)) for k in (k_zd, k_zg)]


def _batches(count: int, n: int, channels: int, seed: int) -> list[np.ndarray]:
    """Random uint8 images normalised as jaxgan normalises them, flat, float64."""
    u8 = np.random.default_rng(seed).integers(0, 256, (count, n, channels * 32 * 32), dtype=np.uint8)
    return [np.asarray(data_lib.normalize(jnp.asarray(b)), np.float64) for b in u8]


def _differences(state, tg, td, pre_bn: set[str]) -> dict[str, float | int]:
    """Largest |jaxgan - torch| over the BatchNorm-fed biases and over everything else (per model
    too), and how many of the other values are off by more than 1e-5."""
    want = ref.generator_to_jaxgan(tg, np.float64) + ref.discriminator_to_jaxgan(td, np.float64)
    out = {"max_abs_diff_pre_bn_biases": 0.0, "max_abs_diff_other": 0.0, "elements_off_by_more_than_1e-5": 0,
           "elements": 0}
    got = (state.g_params, state.g_stats, state.d_params, state.d_stats)
    for name, tree, expected in zip(("gp", "gs", "dp", "ds"), got, want):
        for path, x in jax.tree_util.tree_leaves_with_path(tree):
            y = expected
            for k in path:
                y = y[k.key]
            d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
            key = f"{name}{jax.tree_util.keystr(path)}"
            if key in pre_bn:
                out["max_abs_diff_pre_bn_biases"] = max(out["max_abs_diff_pre_bn_biases"], float(d.max()))
                continue
            out["max_abs_diff_other"] = max(out["max_abs_diff_other"], float(d.max()))
            out[f"max_abs_diff_{name}"] = max(out.get(f"max_abs_diff_{name}", 0.0), float(d.max()))
            out["elements_off_by_more_than_1e-5"] += int((d > 1e-5).sum())
            out["elements"] += int(d.size)
    return out


def run(model: str, x64: bool, batch: int, latent: int, g_hidden, d_hidden) -> dict[str, float | int]:
    """Three iterations of ``model`` on both sides; the differences left after them."""
    cfg = _config(model, batch, latent, g_hidden, d_hidden)
    channels = cfg.image_shape[0]
    torch.manual_seed(0 if model == "dcgan" else 1)
    tg = ref.Generator(channels, 32, latent, tuple(g_hidden))
    td = ref.Discriminator(channels, 32, tuple(d_hidden), sigmoid=model == "dcgan")
    if model == "dcgan":
        tg.apply(ref.init_weight), td.apply(ref.init_weight)
    tg, td = tg.double(), td.double()
    opt_g, opt_d = (ref.dcgan_optimizers if model == "dcgan" else ref.wgan_optimizers)(tg, td)
    dt = np.float64 if x64 else np.float32
    # The biases that feed a BatchNorm: their true gradient is exactly zero (reported apart).
    pre_bn = {"gp['fc']['bias']", *(f"gp['deconvs'][{i}]['bias']" for i in range(len(g_hidden) - 1)),
              *(f"dp['convs'][{i}]['bias']" for i in range(1, len(d_hidden)))}
    with jax.enable_x64(x64):
        gan, state = steps.build(cfg, abstract=True)
        gp, gs = ref.generator_to_jaxgan(tg, dt)
        dp, ds = ref.discriminator_to_jaxgan(td, dt)
        gp, gs, dp, ds = jax.tree_util.tree_map(jnp.asarray, (gp, gs, dp, ds))
        state = state.replace(step=jnp.zeros((), jnp.int32), g_params=gp, g_stats=gs, d_params=dp, d_stats=ds,
                              g_opt=gan.g_tx.init(gp), d_opt=gan.d_tx.init(dp))
        train_step = jax.jit(gan.train_step)
        per_iter = 1 if model == "dcgan" else N_CRITIC
        batches = _batches(ITERATIONS * per_iter, batch, channels, seed=0 if model == "dcgan" else 1)

        def tensor(flat):
            return torch.from_numpy(flat).reshape(len(flat), channels, 32, 32)

        for it in range(ITERATIONS):
            s0 = it * per_iter
            if model == "dcgan":
                z_d, z_g = _noise(gan, s0, batch)
                ref.dcgan_iteration(tg, td, opt_g, opt_d, tensor(batches[s0]), z_d, z_g)
            else:
                zs_d = [_noise(gan, s0 + i, batch)[0] for i in range(N_CRITIC)]
                z_g = _noise(gan, s0 + N_CRITIC - 1, batch)[1]  # G's step follows the last critic step
                ref.wgan_iteration(tg, td, opt_g, opt_d, [tensor(b) for b in batches[s0:s0 + N_CRITIC]],
                                   zs_d, z_g, N_CRITIC, CLIP)
            for i in range(per_iter):
                state, _ = train_step(state, jnp.asarray(batches[s0 + i], dt))
        return _differences(state, tg, td, pre_bn)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m benchmarks.parity_float32", description=__doc__.splitlines()[0])
    p.add_argument("--json", default="benchmarks/results/parity_dcgan_wgan.json", help="where to write the result")
    p.add_argument("--batch_size", type=int, default=16, help="images per step (default 16)")
    p.add_argument("--latent_dim", type=int, default=100, help="noise dimension (default 100)")
    p.add_argument("--smoke", action="store_true",
                   help="the docs' override (not a figure): at the test suite's sizes (batch 8, latent 16), DCGAN and "
                        "WGAN in float64 (the two programs tests/test_zoo.py's parity tests compile) and WGAN in float32")
    a = p.parse_args(argv)
    if not a.json.endswith(".json") or not os.path.isdir(os.path.dirname(os.path.abspath(a.json))):
        p.error(f"--json {a.json!r}: must end in .json, in a folder that exists")
    batch, latent = (8, 16) if a.smoke else (a.batch_size, a.latent_dim)
    gh, dh = G_SMALL, D_SMALL
    torch.set_num_threads(1)  # tiny modules: one thread computes the same values, without the pool's overhead
    res = {"command": " ".join(["python -m benchmarks.parity_float32", *(argv if argv is not None else sys.argv[1:])]),
           "settings": {"batch_size": batch, "latent_dim": latent, "g_hidden": gh, "d_hidden": dh,
                        "iterations": ITERATIONS, "n_critic": N_CRITIC, "smoke": a.smoke}}
    # Each pair compiles its own training step (most of the time taken). The smoke run's float64 two
    # are, to the byte, the programs tests/test_zoo.py's float64 parity tests compile (same sizes,
    # same jax.jit(GAN.train_step)), so in the suite XLA's persistent cache compiles them once for
    # both; its float32 WGAN is the path of the published float32 figures.
    pairs = (("dcgan", True), ("wgan", True), ("wgan", False)) if a.smoke else \
        tuple((m, x) for m in ("dcgan", "wgan") for x in (False, True))
    res.update({f"{m}_{'float64' if x else 'float32'}_vs_torch_float64": run(m, x, batch, latent, gh, dh)
                for m, x in pairs})
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
