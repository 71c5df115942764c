"""``python -m jaxgan.toy1d --out DIR``: the paper's 1-D illustration (Goodfellow et al., 2014, Fig. 1).

z ~ U[0, 1) is mapped by a small MLP G onto the line; the data are x ~ N(0, 1); a small MLP D
learns to tell them apart with the same alternating updates and non-saturating loss as the
image GAN. Four stages are drawn in the paper's style — data density (black dots), G's density
(green), D(x) (blue dashes) — ending at (d), where G has learned the data and the optimal D,
refitted to the final G, is 1/2 everywhere. Writes ``figure.png``, ``toy1d.json`` (``w1``:
Wasserstein-1 distance between G's samples and N(0, 1); ``max_abs_d_minus_half`` on [-2, 2]) and
``samples.npy`` (G's samples).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxgan import models
from jaxgan.config import ConfigError, OneLineParser
from jaxgan.steps import d_loss_from_logits, g_loss_from_logits


class MLP(nnx.Module):
    def __init__(self, widths: Sequence[int], act, *, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.act = act

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def wasserstein1_to_normal(samples: np.ndarray) -> float:
    """W1(empirical, N(0,1)) = mean |x_(i) - Phi^-1((i - 1/2) / n)| over the sorted samples."""
    x = np.sort(np.asarray(samples, np.float64).ravel())
    q = np.asarray(jax.scipy.special.ndtri((np.arange(len(x)) + 0.5) / len(x)), np.float64)
    return float(np.mean(np.abs(x - q)))


def train(steps: int = 8000, batch: int = 4096, seed: int = 0, d_refit: int = 3000, hidden: int = 64,
          lr: float = 1e-3) -> dict:
    """Train G and D; return snapshots of the four stages and the final G's samples."""
    kg, kd = jax.random.split(jax.random.key(seed))
    g_graph, g_params, _ = models.split(MLP((1, hidden, hidden, 1), jnp.tanh, rngs=nnx.Rngs(kg)))
    d_graph, d_params, _ = models.split(MLP((1, hidden, hidden, 1), lambda h: jax.nn.leaky_relu(h, 0.2),
                                            rngs=nnx.Rngs(kd)))
    schedule = optax.cosine_decay_schedule(lr, steps, alpha=0.05)
    g_tx, d_tx = optax.adam(schedule, b1=0.5), optax.adam(schedule, b1=0.5)

    def G(p, z):
        return nnx.merge(g_graph, p)(z)

    def D(p, x):
        return nnx.merge(d_graph, p)(x)[:, 0]

    def d_step(carry, key):
        gp, dp, go, do = carry
        kz, kx = jax.random.split(key)
        real = jax.random.normal(kx, (batch, 1))
        fake = G(gp, jax.random.uniform(kz, (batch, 1)))
        loss, grads = jax.value_and_grad(lambda p: d_loss_from_logits(D(p, real), D(p, fake)))(dp)
        upd, do = d_tx.update(grads, do, dp)
        return (gp, optax.apply_updates(dp, upd), go, do), loss

    def step(carry, key):
        k1, k2 = jax.random.split(key)
        carry, _ = d_step(carry, k1)
        gp, dp, go, do = carry
        z = jax.random.uniform(k2, (batch, 1))
        grads = jax.grad(lambda p: g_loss_from_logits(D(dp, G(p, z)), "nonsaturating"))(gp)
        upd, go = g_tx.update(grads, go, gp)
        return (optax.apply_updates(gp, upd), dp, go, do), None

    @jax.jit
    def run(carry, keys):
        return jax.lax.scan(step, carry, keys)[0]

    @jax.jit
    def refit(carry, keys):  # D alone, G fixed: approaches the optimal D for this G
        return jax.lax.scan(d_step, carry, keys)[0]

    grid = jnp.linspace(-4, 4, 401)[:, None]
    zs = jax.random.uniform(jax.random.key(seed + 1), (20000, 1))

    def snapshot(carry, label):
        gp, dp, _, _ = carry
        return {"label": label, "samples": np.asarray(G(gp, zs))[:, 0],
                "d": np.asarray(jax.nn.sigmoid(D(dp, grid)))}

    keys = jax.random.split(jax.random.key(seed + 2), steps + d_refit + 200)
    carry = (g_params, d_params, g_tx.init(g_params), d_tx.init(d_params))
    carry = refit(carry, keys[:200])  # (a): D has learned a little about the initial G
    stages = [snapshot(carry, "(a)")]
    carry = run(carry, keys[200:200 + steps // 10])
    stages.append(snapshot(carry, "(b)"))
    carry = run(carry, keys[200 + steps // 10:200 + steps // 3])
    stages.append(snapshot(carry, "(c)"))
    carry = run(carry, keys[200 + steps // 3:200 + steps])
    carry = refit(carry, keys[200 + steps:])
    stages.append(snapshot(carry, "(d)"))
    final = stages[-1]
    inner = np.abs(np.asarray(grid[:, 0])) <= 2
    return {"stages": stages, "grid": np.asarray(grid[:, 0]), "samples": final["samples"],
            "w1": wasserstein1_to_normal(final["samples"]),
            "max_abs_d_minus_half": float(np.max(np.abs(final["d"][inner] - 0.5)))}


def figure(result: dict, path: str) -> None:
    """The paper's panels: data (black dots), G's density (green), D (blue dashes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = result["grid"]
    pdf = np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), sharey=True)
    bins = np.linspace(-4, 4, 81)
    for ax, st in zip(axes, result["stages"]):
        hist, edges = np.histogram(st["samples"], bins=bins, density=True)
        ax.plot(x, pdf, "k:", lw=2, label="data p_x")
        ax.plot((edges[:-1] + edges[1:]) / 2, hist, "g-", lw=1.5, label="G: p_g")
        ax.plot(x, st["d"], "b--", lw=1.5, label="D(x)")
        ax.set_title(st["label"])
        ax.set_xlim(-4, 4)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("x")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"1-D GAN, z ~ U[0,1), x ~ N(0,1): final W1 = {result['w1']:.3f}, "
                 f"max |D - 1/2| on [-2, 2] = {result['max_abs_d_minus_half']:.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m jaxgan.toy1d", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="toy1d")
    p.add_argument("--steps", type=int, default=8000, help="alternating D/G steps")
    p.add_argument("--d_refit", type=int, default=3000, help="D-only steps on the final G, stage (d)")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine-decayed)")
    args = p.parse_args(argv)
    try:
        if args.steps < 10 or args.d_refit < 1 or args.batch < 2 or args.seed < 0 or not args.lr > 0:
            raise ConfigError("--steps must be >= 10, --d_refit >= 1, --batch >= 2, --seed >= 0, --lr > 0")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ConfigError(f"--out {args.out!r} exists and is not a directory")
        os.makedirs(args.out, exist_ok=True)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = train(args.steps, args.batch, args.seed, args.d_refit, lr=args.lr)
    seconds = time.perf_counter() - t0
    figure(result, os.path.join(args.out, "figure.png"))
    np.save(os.path.join(args.out, "samples.npy"), result["samples"].astype(np.float32))
    summary = {"w1": result["w1"], "max_abs_d_minus_half": result["max_abs_d_minus_half"],
               "samples": int(len(result["samples"])), "steps": args.steps, "d_refit": args.d_refit,
               "batch": args.batch, "seed": args.seed, "lr": args.lr, "seconds": round(seconds, 1)}
    with open(os.path.join(args.out, "toy1d.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"w1 {summary['w1']:.4f}  max|D-1/2| on [-2,2] {summary['max_abs_d_minus_half']:.4f}  "
          f"({seconds:.0f} s) -> {args.out}/figure.png, toy1d.json, samples.npy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
