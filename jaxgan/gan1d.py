"""The paper's 1-D GAN (Goodfellow et al., 2014, Fig. 1), trained as a population of seeds.

z ~ U[0, 1) is mapped onto the line by a small MLP G; the data are x ~ N(0, 1); a small MLP D
tells them apart. D minimises the image GAN's BCE on real and fake; G minimises the
non-saturating -E log D(G(z)) against the *updated* D (alternating updates, as the reference).

Why plain training does not settle, and what this module does about it. Near the equilibrium
(p_g = p_data, D = 1/2 everywhere) the game's Jacobian has eigenvalues with almost no real part:
G and D circle the equilibrium rather than approach it (Mescheder et al., 2018, "Which training
methods for GANs do actually converge?"), on an orbit whose size is set by the learning rate and
the batch noise, so where a run stops is a matter of luck and of the seed. What this module
does instead (with all of it every seed tried, 0-19, meets the targets W1 <= 0.05 and
max |D - 1/2| <= 0.05; without the average or the second time scale some seeds miss them,
without R1 all still meet them with less margin; the README has the table):

1. **R1 penalty** on D, ``r1``/2 E_real |dD/dx|^2 (Mescheder et al., 2018). It is zero at the
   equilibrium (a constant D has no slope), so it does not move it, and it damps the rotation
   around it: under their assumptions the equilibrium becomes locally attracting.
2. **Two time scales**: D's learning rate is ``d_lr_ratio`` times G's (Heusel et al., 2017), so G
   is always scored by a D close to the optimal one for the current G.
3. **A decaying learning rate** (cosine, to ``lr_floor`` of its peak) shrinks what is left of
   the orbit.
4. **Averaged G**: an exponential moving average of G's weights (decay ``ema``, from
   ``ema_start`` of the run on) is the run's G: the average of iterates around the equilibrium
   sits nearer its centre than any one iterate.
5. **D refitted to the final G** (``d_refit`` steps at batch ``refit_batch``, fresh Adam, learning
   rate decaying to 0, no penalty): panel (d) is the optimal D *for the final G*, as the paper
   draws it, so max |D - 1/2| measures how far G is from the data, not how far D lags behind.

G's shape matters for the tails: its hidden layers are leaky ReLUs (as D's) and it sees z
standardised to mean 0 and variance 1. A piecewise-linear G continues linearly beyond its last
kink, so it can stretch into the normal's tails; tanh units saturate there and pile G's mass up
short of them, which a refitted D shows as D << 1/2 near x = +-2.

Everything is pure JAX: one seed's whole run (initialisation, the four stages, the refit and the
evaluation draws) is one function of its key, ``Toy.run``; a population of seeds is
``jax.vmap`` of it, compiled once (``run_population``). Every random number of a run comes from
``fold_in(key(seed), ...)``, so member i of a population computes what the solo run of seed i
computes (tested to float tolerance), and a solo run is repeatable bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxgan.losses import bce_d_loss, bce_g_loss

Params = Any
TARGETS = {"w1": 0.05, "max_abs_d_minus_half": 0.05}
INNER = 2.0  # max |D - 1/2| is measured on [-INNER, INNER]


@dataclass(frozen=True)
class Settings:
    """One run's settings; the command's flags and their defaults are read from these fields."""

    steps: int = field(default=16000, metadata={"help": "alternating D/G training steps"})
    batch: int = field(default=1024, metadata={"help": "real and fake examples per D and per G step"})
    lr: float = field(default=2e-3, metadata={"help": "G's peak Adam learning rate (cosine-decayed)"})
    d_lr_ratio: float = field(default=4.0, metadata={"help": "D's learning rate / G's (two time scales)"})
    r1: float = field(default=0.05, metadata={"help": "weight of D's gradient penalty on real data (R1)"})
    lr_floor: float = field(default=0.05, metadata={"help": "final learning rate as a fraction of the peak"})
    ema: float = field(default=0.999, metadata={"help": "decay of G's weight average (0: no averaging)"})
    ema_start: float = field(default=0.5, metadata={"help": "fraction of the steps before G is averaged"})
    d_refit: int = field(default=1000, metadata={"help": "D-only steps on the final G for stage (d)"})
    refit_batch: int = field(default=2048, metadata={"help": "batch of the final D refit"})
    refit_lr: float = field(default=1e-3, metadata={"help": "peak learning rate of the final D refit"})
    hidden: int = field(default=32, metadata={"help": "width of G's and D's two hidden layers"})
    samples: int = field(default=20000, metadata={"help": "G samples drawn per stage for the figure and W1"})

    def validate(self, prefix: str = "") -> Settings:
        """Raise ValueError (one line; each setting named as ``prefix + name``) for settings no
        run can use; return self."""
        problems = []
        if self.steps < 10:
            problems.append(f"{prefix}steps must be >= 10")
        for name in ("batch", "refit_batch", "samples"):
            if getattr(self, name) < 2:
                problems.append(f"{prefix}{name} must be >= 2")
        for name in ("d_refit", "hidden"):
            if getattr(self, name) < 1:
                problems.append(f"{prefix}{name} must be >= 1")
        if not (math.isfinite(self.r1) and self.r1 >= 0):
            problems.append(f"{prefix}r1 must be a finite number >= 0")
        for name in ("lr", "d_lr_ratio", "refit_lr"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                problems.append(f"{prefix}{name} must be a finite number > 0")
        for name, closed in (("lr_floor", True), ("ema", False), ("ema_start", True)):
            v = getattr(self, name)
            if not (0 <= v <= 1 and (closed or v < 1)):
                problems.append(f"{prefix}{name} must be in [0, 1{']' if closed else ')'}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def stage_ends(self) -> tuple[int, int, int, int]:
        """Training steps done at the paper's four panels: (a) early (D has learned a little
        about the initial G), (b), (c), and (d) the end."""
        return max(1, self.steps // 50), max(2, self.steps // 10), max(3, self.steps // 3), self.steps


class MLP(nnx.Module):
    """1 -> hidden -> hidden -> 1 with LeakyReLU(0.2) between: the shape of both G and D."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs):
        widths = (1, hidden, hidden, 1)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jax.nn.leaky_relu(layer(x), 0.2)
        return self.layers[-1](x)


class Toy:
    """The static half of a run: module graphs, optimisers and settings. Methods are pure."""

    def __init__(self, s: Settings):
        self.s = s.validate()
        # G and D share one structure; only their parameters differ.
        self.graph = nnx.graphdef(nnx.eval_shape(lambda: MLP(s.hidden, rngs=nnx.Rngs(0))))
        g_lr = optax.cosine_decay_schedule(s.lr, s.steps, alpha=s.lr_floor)
        d_lr = optax.cosine_decay_schedule(s.lr * s.d_lr_ratio, s.steps, alpha=s.lr_floor)
        # No momentum (b1 = 0), as usual for GANs: in a game momentum tends to feed the rotation.
        self.g_tx = optax.adam(g_lr, b1=0.0)
        self.d_tx = optax.adam(d_lr, b1=0.0)
        self.grid = jnp.linspace(-4.0, 4.0, 401)

    # -- the networks -------------------------------------------------------------------------
    def G(self, params: Params, z: jax.Array) -> jax.Array:
        """G's samples for noise z of shape (n,): shape (n,)."""
        # z ~ U[0, 1) standardised to mean 0, variance 1 before the first layer, as any input.
        return nnx.merge(self.graph, params)(((z - 0.5) * math.sqrt(12.0))[:, None])[:, 0]

    def D(self, params: Params, x: jax.Array) -> jax.Array:
        """D's logits for points x of shape (n,): shape (n,)."""
        return nnx.merge(self.graph, params)(x[:, None])[:, 0]

    def init(self, key: jax.Array) -> dict:
        """The training state of one seed: G, D, their Adam states, G's average, the step."""
        kg, kd = jax.random.split(key)
        g = nnx.to_pure_dict(nnx.state(MLP(self.s.hidden, rngs=nnx.Rngs(kg)), nnx.Param))
        d = nnx.to_pure_dict(nnx.state(MLP(self.s.hidden, rngs=nnx.Rngs(kd)), nnx.Param))
        return {"g": g, "d": d, "g_opt": self.g_tx.init(g), "d_opt": self.d_tx.init(d), "g_avg": g,
                "step": jnp.zeros((), jnp.int32)}

    # -- the steps ----------------------------------------------------------------------------
    def _d_grads(self, d: Params, g: Params, key: jax.Array, batch: int, r1: float) -> Params:
        """Gradient of D's loss on ``batch`` real and ``batch`` fresh fake points, plus
        ``r1``/2 E_real |dD/dx|² (R1, Mescheder et al., 2018)."""
        kz, kx = jax.random.split(key)
        real = jax.random.normal(kx, (batch,))
        fake = self.G(g, jax.random.uniform(kz, (batch,)))

        def loss(p):
            # One pass over real and fake together (D has no batch statistics).
            logits = self.D(p, jnp.concatenate([real, fake]))
            value = bce_d_loss(logits[:batch], logits[batch:])
            if r1:
                # dD/dx at real points, forward mode (D maps each point on its own); a quarter
                # of the batch estimates the expectation well enough at a quarter of the cost.
                sub = real[: max(1, batch // 4)]
                slope = jax.jvp(lambda x: self.D(p, x), (sub,), (jnp.ones_like(sub),))[1]
                value = value + r1 / 2 * jnp.mean(jnp.square(slope))
            return value

        return jax.grad(loss)(d)

    def train_step(self, state: dict, key: jax.Array) -> dict:
        """One D update on real and fresh fakes, then one G update scored by the updated D.

        ``key`` is the run's training key; the step's own randomness is ``fold_in(key, step)``."""
        s = self.s
        kd, kg = jax.random.split(jax.random.fold_in(key, state["step"]))
        d_grads = self._d_grads(state["d"], state["g"], kd, s.batch, s.r1)
        upd, d_opt = self.d_tx.update(d_grads, state["d_opt"], state["d"])
        d = optax.apply_updates(state["d"], upd)
        z = jax.random.uniform(kg, (s.batch,))
        grads = jax.grad(lambda p: bce_g_loss(self.D(d, self.G(p, z)), "nonsaturating"))(state["g"])
        upd, g_opt = self.g_tx.update(grads, state["g_opt"], state["g"])
        g = optax.apply_updates(state["g"], upd)
        step = state["step"] + 1
        # Before ema_start the average is G itself (decay 0); after, an exponential moving average.
        decay = jnp.where(step > int(s.ema_start * s.steps), s.ema, 0.0)
        g_avg = jax.tree.map(lambda a, w: decay * a + (1 - decay) * w, state["g_avg"], g)
        return {"g": g, "d": d, "g_opt": g_opt, "d_opt": d_opt, "g_avg": g_avg, "step": step}

    def train(self, state: dict, key: jax.Array, start: jax.Array, end: jax.Array) -> dict:
        """Training steps ``start`` to ``end`` (traced bounds, so one compiled loop body serves
        every stage; the same for every member of a population, so ``vmap`` keeps one loop)."""
        return jax.lax.fori_loop(start, end, lambda _, st: self.train_step(st, key), state)

    def fit_d(self, d: Params, g: Params, key: jax.Array) -> Params:
        """D alone against a fixed G: ``d_refit`` Adam steps (fresh state) with the learning rate
        decaying to 0, so D settles on (an MLP's estimate of) the optimal D for this G."""
        s = self.s
        tx = optax.adam(optax.cosine_decay_schedule(s.refit_lr, s.d_refit), b1=0.0)

        def step(carry, i):
            d, opt = carry
            grads = self._d_grads(d, g, jax.random.fold_in(key, i), s.refit_batch, 0.0)
            upd, opt = tx.update(grads, opt, d)
            return (optax.apply_updates(d, upd), opt), None

        return jax.lax.scan(step, (d, tx.init(d)), jnp.arange(s.d_refit))[0][0]

    # -- one whole run ------------------------------------------------------------------------
    def run(self, key: jax.Array) -> dict:
        """One seed's run from its key: the four stages and the final state.

        Returns ``samples`` (4, samples): G's samples at each stage (the same noise each time);
        ``d`` (4, len(grid)): D(x) on ``grid`` at each stage; ``state``, the training state after
        the last step; ``d_final``, D refitted to the final G."""
        s = self.s
        k_init, k_train, k_refit, k_eval = (jax.random.fold_in(key, i) for i in range(4))
        z = jax.random.uniform(k_eval, (s.samples,))

        def stage(state, bounds):
            state = self.train(state, k_train, *bounds)
            return state, (self.G(state["g_avg"], z), jax.nn.sigmoid(self.D(state["d"], self.grid)))

        ends = jnp.asarray(s.stage_ends())
        starts = jnp.concatenate([jnp.zeros(1, ends.dtype), ends[:-1]])
        state, (samples, d) = jax.lax.scan(stage, self.init(k_init), (starts, ends))
        d_final = self.fit_d(state["d"], state["g_avg"], k_refit)
        # (d) shows the final G with the D refitted to it, as the paper's last panel.
        d = d.at[-1].set(jax.nn.sigmoid(self.D(d_final, self.grid)))
        return {"samples": samples, "d": d, "state": state, "d_final": d_final}


# -- solo and population ----------------------------------------------------------------------
def seed_keys(seeds: Sequence[int]) -> jax.Array:
    """One key per seed, ``key(seed)``: member i of a population draws what seed i draws alone."""
    return jnp.stack([jax.random.key(int(s)) for s in seeds])


def run_solo(toy: Toy, seed: int) -> dict:
    """One seed's run, compiled on its own (no ``vmap``)."""
    return jax.jit(toy.run)(jax.random.key(int(seed)))


def run_population(toy: Toy, seeds: Sequence[int]) -> dict:
    """All seeds' runs as one compiled program: ``vmap`` of ``Toy.run`` over the seeds' keys.
    Every leaf of the result gains a leading axis, one row per seed."""
    return jax.jit(jax.vmap(toy.run))(seed_keys(seeds))


# -- evaluation ---------------------------------------------------------------------------------
def wasserstein1_to_normal(samples: np.ndarray) -> float:
    """W1 between the samples' empirical law and N(0, 1).

    In one dimension W1 = ∫ |F⁻¹(u) − Φ⁻¹(u)| du; with n sorted samples x_(i) this is
    mean_i |x_(i) − Φ⁻¹((i − ½)/n)| up to the error of the midpoint rule (O(log n / n))."""
    x = np.sort(np.asarray(samples, np.float64).ravel())
    u = (np.arange(len(x), dtype=np.float64) + 0.5) / len(x)
    return float(np.mean(np.abs(x - np.asarray(jax.scipy.special.ndtri(u), np.float64))))


def max_abs_d_minus_half(grid: np.ndarray, d: np.ndarray, inner: float = INNER) -> float:
    """max |D(x) − ½| over the grid points with |x| <= inner."""
    grid, d = np.asarray(grid), np.asarray(d)
    return float(np.max(np.abs(d[np.abs(grid) <= inner] - 0.5)))


def summarise(toy: Toy, seeds: Sequence[int], result: dict) -> dict:
    """Per-seed W1 and max |D − ½| of the final stage, the worst and mean over seeds, targets."""
    samples, d = np.asarray(result["samples"]), np.asarray(result["d"])
    grid = np.asarray(toy.grid)
    rows = [{"seed": int(s), "w1": wasserstein1_to_normal(samples[i, -1]),
             "max_abs_d_minus_half": max_abs_d_minus_half(grid, d[i, -1])} for i, s in enumerate(seeds)]
    keys = ("w1", "max_abs_d_minus_half")
    worst = {k: float(np.max([r[k] for r in rows])) for k in keys}  # NaN, if any, is the worst
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    met = all(worst[k] <= TARGETS[k] for k in keys)  # NaN compares False: a diverged run fails
    return {"seeds": rows, "worst": worst, "mean": mean, "targets": dict(TARGETS),
            "all_meet_targets": bool(met), "settings": dataclasses.asdict(toy.s)}


def table(summary: dict) -> str:
    """The per-seed rows, worst and mean as a Markdown table."""
    lines = ["| seed | W1 | max abs(D − ½) on [−2, 2] |", "|---:|---:|---:|"]
    for r in summary["seeds"]:
        lines.append(f"| {r['seed']} | {r['w1']:.4f} | {r['max_abs_d_minus_half']:.4f} |")
    for name in ("worst", "mean"):
        v = summary[name]
        lines.append(f"| **{name}** | {v['w1']:.4f} | {v['max_abs_d_minus_half']:.4f} |")
    return "\n".join(lines)


def figure(toy: Toy, result: dict, member: int, seed: int, path: str) -> None:
    """The paper's four panels for one member: data density (black dots), G's density (green),
    D(x) (blue dashes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(toy.grid)
    samples, d = np.asarray(result["samples"][member]), np.asarray(result["d"][member])
    pdf = np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)
    bins = np.linspace(-4, 4, 81)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), sharey=True)
    for ax, label, xs, ds in zip(axes, ("(a)", "(b)", "(c)", "(d)"), samples, d):
        hist, edges = np.histogram(xs, bins=bins, density=True)
        ax.plot(x, pdf, "k:", lw=2, label="data p_x")
        ax.plot((edges[:-1] + edges[1:]) / 2, hist, "g-", lw=1.5, label="G: p_g")
        ax.plot(x, ds, "b--", lw=1.5, label="D(x)")
        ax.set_title(label)
        ax.set_xlim(-4, 4)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("x")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"1-D GAN, z ~ U[0,1), x ~ N(0,1), seed {seed}: final W1 = "
                 f"{wasserstein1_to_normal(samples[-1]):.3f}, max |D - 1/2| on [-2, 2] = "
                 f"{max_abs_d_minus_half(x, d[-1]):.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
