"""Measure the DCGAN/WGAN loop parity against float64 PyTorch: jaxgan in float32 and in float64.
Writes benchmarks/results/parity_dcgan_wgan.json (or the path given).

    python benchmarks/parity_float32.py [out.json]"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np, torch, jax, jax.numpy as jnp, optax
from tests import test_dcgan as T
from benchmarks import torch_dcgan as ref
from jaxgan import optim

PRE_BN = {("gp", "fc", "bias"), *{("gp", "deconvs", i, "bias") for i in (0, 1, 2)},
          *{("dp", "convs", i, "bias") for i in (1, 2, 3)}}


def run(model, x64):
    torch.manual_seed(0 if model == "dcgan" else 1)
    c = 1 if model == "dcgan" else 3
    shape, n = (c, 32, 32), 16
    tg = ref.Generator(c, 32, 100, T.G_SMALL)
    td = ref.Discriminator(c, 32, T.D_SMALL, sigmoid=model == "dcgan")
    if model == "dcgan":
        tg.apply(ref.init_weight), td.apply(ref.init_weight)
    tg, td = tg.double(), td.double()
    dt = np.float64 if x64 else np.float32
    with jax.enable_x64(x64):
        if model == "dcgan":
            opt_g, opt_d = ref.dcgan_optimizers(tg, td)
            g_tx, d_tx = optax.adam(2e-4, 0.5, 0.999, eps=1e-8), optax.adam(2e-4, 0.5, 0.999, eps=1e-8)
        else:
            opt_g, opt_d = ref.wgan_optimizers(tg, td)
            g_tx, d_tx = optim.rmsprop(5e-5), optim.rmsprop(5e-5)
        it_fn, critic, g_step = T.make_iterations(*T.graphs(shape), g_tx, d_tx)
        gp, gs = ref.generator_to_jaxgan(tg, dt); dp, ds = ref.discriminator_to_jaxgan(td, dt)
        gp, gs, dp, ds = jax.tree_util.tree_map(jnp.asarray, (gp, gs, dp, ds))
        s = {"gp": gp, "gs": gs, "dp": dp, "ds": ds, "go": g_tx.init(gp), "do": d_tx.init(dp)}
        a = lambda t: jnp.asarray(t.numpy(), dt)
        for _ in range(3):
            if model == "dcgan":
                images = torch.rand(n, *shape, dtype=torch.float64) * 2 - 1
                z_d, z_g = torch.rand(n, 100, dtype=torch.float64), torch.rand(n, 100, dtype=torch.float64)
                ref.dcgan_iteration(tg, td, opt_g, opt_d, images, z_d, z_g)
                s, _, _ = it_fn(s, a(images.reshape(n, -1)), a(z_d), a(z_g))
            else:
                bs = [torch.rand(n, *shape, dtype=torch.float64) * 2 - 1 for _ in range(3)]
                zs = [torch.rand(n, 100, dtype=torch.float64) for _ in range(3)]
                z_g = torch.rand(n, 100, dtype=torch.float64)
                ref.wgan_iteration(tg, td, opt_g, opt_d, bs, zs, z_g, 3, 0.01)
                for b, z in zip(bs, zs):
                    s, _ = critic(s, a(b.reshape(n, -1)), a(z), 0.01)
                s, _ = g_step(s, a(z_g))
        want = dict(zip(("gp", "gs", "dp", "ds"), ref.generator_to_jaxgan(tg, np.float64) + ref.discriminator_to_jaxgan(td, np.float64)))
        out = {"max_abs_diff_pre_bn_biases": 0.0, "max_abs_diff_other": 0.0, "elements_off_by_more_than_1e-5": 0,
               "elements": 0}
        for name in want:
            for path, x in jax.tree_util.tree_leaves_with_path(s[name]):
                y = want[name]
                for k in path:
                    y = y[k.key]
                d = np.abs(np.asarray(x, np.float64) - y)
                key = "max_abs_diff_pre_bn_biases" if (name, *[k.key for k in path]) in PRE_BN else "max_abs_diff_other"
                out[key] = max(out[key], float(d.max()))
                if key == "max_abs_diff_other":
                    g = f"max_abs_diff_{name}"
                    out[g] = max(out.get(g, 0.0), float(d.max()))
                if key == "max_abs_diff_other":
                    out["elements_off_by_more_than_1e-5"] += int((d > 1e-5).sum())
                    out["elements"] += d.size
        return out


res = {f"{m}_{'float64' if x else 'float32'}_vs_torch_float64": run(m, x) for m in ("dcgan", "wgan") for x in (False, True)}
json.dump(res, open((sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/parity_dcgan_wgan.json"), "w"), indent=1)
print(json.dumps(res, indent=1))
