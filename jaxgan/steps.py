"""Pure training steps: the D update, the G update, and many steps fused into one compiled loop;
the same for every model family (``jaxgan.families``), which supplies the networks, objectives,
optimisers and post-critic hook.

Nothing here does I/O or runs Python per step. The training state is a plain pytree; every random
number of step ``s`` comes from ``fold_in(key(seed), s)``, so a run restored at step ``s`` draws
exactly what the uninterrupted run drew.

The loop is the references': for each batch, one D update on real and freshly generated images,
then one G update scored by the *updated* D (alternating, not simultaneous); with ``d_steps`` k
(WGAN's n_critic), G is updated after every k-th D update, each D update on the next batch. G
runs with batch statistics in both updates, so, as in PyTorch, both forward passes move its
BatchNorm running averages. A D without batch statistics (the MLP's) scores real and fake images
in one pass, which equals the references' two passes; a D with BatchNorm (DCGAN's) takes them in
separate training-mode passes, real first, as the references do, and stays in training mode while
it scores G's fakes for G's update, so that pass moves D's statistics as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxgan import data as data_lib
from jaxgan import layers, parallel
from jaxgan.config import Config
from jaxgan.families import Family

Metrics = dict[str, jax.Array]
Params = layers.Params
PENALTY_STREAM = 4  # fold_in(step key, 4): the stream of a family's D penalty (after split(key, 4))
LABEL_STREAM = 5  # fold_in(step key, 5): the classes G draws in a conditional run (its D and G updates)
GRID_COLUMNS = 8  # a conditional run's grids: one row per class, this many noise vectors across


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, and nothing else."""

    g_params: Params
    g_stats: Params
    d_params: Params
    d_stats: Params  # D's BatchNorm statistics: {} for a D without them (no leaves, same checkpoints)
    g_opt: Any
    d_opt: Any
    step: jax.Array  # int32 scalar: batches trained on so far (= D updates)
    g_ema: Params | None = None  # exponential moving average of g_params (--g_ema)


def run_keys(seed: int) -> dict[str, jax.Array]:
    """Independent random streams of a run, all derived from its seed."""
    root = jax.random.key(seed)
    return {name: jax.random.fold_in(root, i)
            for i, name in enumerate(("init", "fixed_noise", "shuffle", "step"))}


@dataclass(frozen=True, eq=False)
class GAN:
    """The static half of training: the family, model graphs, optimisers and options. Its methods
    are pure."""

    family: Family
    cfg: Config  # the settings the family reads (its objective's options, clip_limit, ...)
    g_graph: nnx.GraphDef
    d_graph: nnx.GraphDef
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    latent_dim: int
    image_shape: tuple[int, int, int]
    noise: str
    d_steps: int
    batch_size: int
    step_key: jax.Array
    shuffle_key: jax.Array  # the epochs' permutations come from it
    fixed_key: jax.Array  # the grids' fixed noise comes from it
    joint_d_pass: bool  # D has no batch statistics: real and fake go through it in one pass
    mesh: Any = None  # jax.sharding.Mesh: batches are split over its "data" axis
    g_ema_decay: float = 0.0
    chunk_steps: int = 200  # the most steps one train_chunk call runs (--steps_per_call)
    n_classes: int = 0  # --conditional: G and D are given class labels (0: unconditional)
    g_labels: str = "uniform"  # how G's training labels are drawn (--g_labels)
    grid_classes: int = 10  # a conditional grid's rows (--grid_classes)

    def _shard(self, x: jax.Array) -> jax.Array:
        return parallel.constrain_batch(x, self.mesh)

    # -- building blocks -------------------------------------------------------------------
    def sample_noise(self, key: jax.Array, n: int) -> jax.Array:
        """z ~ U[0, 1) (the reference's ``torch.rand``) or N(0, 1)."""
        shape = (n, self.latent_dim)
        if self.noise == "normal":
            return self._shard(jax.random.normal(key, shape, jnp.float32))
        return self._shard(jax.random.uniform(key, shape, jnp.float32))

    def sample_labels(self, key: jax.Array, real_labels: jax.Array) -> jax.Array:
        """The classes G draws for one update of a conditional run: uniform over the classes
        (``--g_labels uniform``), or the batch's own real labels in a random order (``data``: the
        data's label histogram, exactly, over an epoch)."""
        m = real_labels.shape[0]
        if self.g_labels == "data":
            return real_labels[jax.random.permutation(key, m)]
        return self._shard(jax.random.randint(key, (m,), 0, self.n_classes, jnp.int32))

    def generate(self, state: TrainState, z: jax.Array, use_batch_stats: bool = True,
                 labels: jax.Array | None = None) -> tuple[jax.Array, Params]:
        """G(z) (conditional: G(z, labels)) as flat images, and G's BatchNorm statistics after the pass."""
        return self.apply_g(state.g_params, state.g_stats, z, use_batch_stats, labels)

    def apply_g(self, g_params: Params, g_stats: Params, z: jax.Array, use_batch_stats: bool = True,
                labels: jax.Array | None = None) -> tuple[jax.Array, Params]:
        return layers.apply(self.g_graph, g_params, g_stats, z, use_batch_stats, **_given(labels))

    def d_forward(self, d_params: Params, d_stats: Params, x: jax.Array, dropout_key: jax.Array | None,
                  labels: jax.Array | None = None) -> tuple[jax.Array, Params]:
        """D's raw outputs (logits; a critic's scores) and its statistics after the pass, in
        training mode, as every reference runs D (``dropout_key=None``: no dropout); a conditional
        D scores each image with its ``labels``."""
        return layers.apply(self.d_graph, d_params, d_stats, x, True, dropout_key, **_given(labels))

    def d_report(self, out: jax.Array) -> jax.Array:
        """What d_real/d_fake report (``Family.report``): mean probability, or a critic's mean score."""
        return self.family.report(out)

    # -- the two updates -------------------------------------------------------------------
    def d_update(self, state: TrainState, real: jax.Array, z: jax.Array, dropout_key: jax.Array | None,
                 penalty_key: jax.Array | None = None, real_labels: jax.Array | None = None,
                 fake_labels: jax.Array | None = None) -> tuple[TrainState, Metrics]:
        """One optimiser step on D, then the family's post-critic hook (WGAN: clipping); G only
        produces (detached) fakes, moving its BatchNorm averages. ``penalty_key``: the stream of
        the family's D penalty, if it has one. A conditional run: D sees each real image with its
        own label (``real_labels``), each fake with the class G drew it for (``fake_labels``)."""
        fake, g_stats = self.generate(state, z, True, fake_labels)
        fake = jax.lax.stop_gradient(fake)
        m, family, cfg = real.shape[0], self.family, self.cfg

        def loss_fn(d_params):
            if self.joint_d_pass:
                # D is per-example (no batch statistics): one pass over real and fake together
                # equals the references' two passes and halves the launches.
                both = None if real_labels is None else jnp.concatenate([real_labels, fake_labels])
                out, _ = self.d_forward(d_params, state.d_stats, jnp.concatenate([real, fake]), dropout_key, both)
                real_out, fake_out, d_stats = out[:m], out[m:], state.d_stats
            else:
                # D has batch statistics: the references' two passes, real first.
                real_out, d_stats = self.d_forward(d_params, state.d_stats, real, dropout_key, real_labels)
                fake_out, d_stats = self.d_forward(d_params, d_stats, fake, dropout_key, fake_labels)
            loss = family.d_loss(real_out, fake_out, cfg)
            # A conditional critic's penalty scores the interpolates with the real images' labels.
            penalty = family.d_penalty(lambda x: self.d_forward(d_params, d_stats, x, dropout_key, real_labels)[0],
                                       real, fake, penalty_key, cfg)
            return (loss if penalty is None else loss + penalty), (real_out, fake_out, d_stats)

        (loss, (real_out, fake_out, d_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
        updates, d_opt = self.d_tx.update(grads, state.d_opt, state.d_params)
        d_params = family.after_d_update(optax.apply_updates(state.d_params, updates), cfg)
        state = state.replace(d_params=d_params, d_opt=d_opt, d_stats=d_stats, g_stats=g_stats)
        metrics = {"d_loss": loss, "d_real": self.d_report(real_out), "d_fake": self.d_report(fake_out)}
        return state, metrics

    def g_update(self, state: TrainState, z: jax.Array, dropout_key: jax.Array | None,
                 labels: jax.Array | None = None) -> tuple[TrainState, jax.Array]:
        """One optimiser step on G, scored by the current (already updated) D; D's parameters are
        not changed (a D with BatchNorm moves its statistics: it is in training mode, as in the
        references). A conditional run: G draws, and D scores, the classes ``labels``."""

        def loss_fn(g_params):
            fake, g_stats = self.apply_g(g_params, state.g_stats, z, True, labels)
            out, d_stats = self.d_forward(state.d_params, state.d_stats, fake, dropout_key, labels)
            return self.family.g_loss(out, self.cfg), (g_stats, d_stats)

        (loss, (g_stats, d_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
        updates, g_opt = self.g_tx.update(grads, state.g_opt, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        state = state.replace(g_params=g_params, g_opt=g_opt, g_stats=g_stats, d_stats=d_stats)
        if self.g_ema_decay:
            d = self.g_ema_decay
            state = state.replace(g_ema=jax.tree_util.tree_map(lambda e, p: d * e + (1 - d) * p,
                                                               state.g_ema, g_params))
        return state, loss

    # -- one step, many steps --------------------------------------------------------------
    def train_step(self, state: TrainState, real: jax.Array, labels: jax.Array | None = None
                   ) -> tuple[TrainState, Metrics]:
        """One batch: a D update, then (every ``d_steps``-th batch) a G update; step += 1.
        ``labels``: the batch's class labels, where the dataset has them (unused by the
        unconditional families; a conditional run's D sees each real image with its own).
        A conditional run's G labels come from ``fold_in(key, LABEL_STREAM)``, a stream of its
        own, so no unconditional draw moves."""
        key = jax.random.fold_in(self.step_key, state.step)
        k_zd, k_dd, k_zg, k_dg = jax.random.split(key, 4)
        m = real.shape[0]
        y_d = y_g = None
        if self.n_classes:
            if labels is None:
                raise ValueError("a conditional run's batches need their labels")
            k_yd, k_yg = jax.random.split(jax.random.fold_in(key, LABEL_STREAM))
            y_d, y_g = self.sample_labels(k_yd, labels), self.sample_labels(k_yg, labels)
        else:
            labels = None
        state, metrics = self.d_update(state, real, self.sample_noise(k_zd, m), k_dd,
                                       jax.random.fold_in(key, PENALTY_STREAM), labels, y_d)
        z_g = self.sample_noise(k_zg, m)
        if self.d_steps == 1:
            state, g_loss = self.g_update(state, z_g, k_dg, y_g)
            updated = jnp.float32(1.0)
        else:
            do_g = state.step % self.d_steps == self.d_steps - 1
            # The loss as float32 in both branches (a float64 run, as the parity tests make, too).
            state, g_loss = jax.lax.cond(do_g, lambda s: _loss_f32(self.g_update(s, z_g, k_dg, y_g)),
                                         lambda s: (s, jnp.float32(0.0)), state)
            updated = do_g.astype(jnp.float32)
        metrics.update(g_loss=g_loss, g_updated=updated)
        return state.replace(step=state.step + 1), metrics

    def _step(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, Metrics]:
        batch = {k: self._shard(v) for k, v in batch.items()}
        return self.train_step(state, batch["images"], batch.get("labels"))

    def train_chunk(self, state: TrainState, data: data_lib.Dataset, perm: jax.Array, start: jax.Array,
                    length: jax.Array) -> tuple[TrainState, Metrics]:
        """``length`` consecutive full batches ``start, start+1, ...`` of the epoch ordered by
        ``perm``, fused into one compiled loop. ``length`` is a traced scalar of at most
        ``chunk_steps``, so one program serves every chunk of a run, whatever its length (an epoch's
        remainder, a checkpoint boundary, a resume). Returns per-step metrics of shape
        (chunk_steps,), of which the first ``length`` were written."""

        def batch(i):
            return data_lib.gather_batch(data, perm, start + i, self.batch_size)

        shapes = jax.eval_shape(lambda s, i: self._step(s, batch(i))[1], state, start)
        buffers = {k: jnp.zeros((self.chunk_steps,) + v.shape, v.dtype) for k, v in shapes.items()}

        def body(i, carry):
            state, buffers = carry
            state, metrics = self._step(state, batch(i))
            return state, {k: buffers[k].at[i].set(metrics[k]) for k in buffers}

        # Never more steps than there are slots: a longer request runs chunk_steps steps, and its
        # metrics and its state stay in step with each other.
        state, metrics = jax.lax.fori_loop(0, jnp.minimum(length, self.chunk_steps), body, (state, buffers))
        return state, {**metrics, "finite": is_finite(state)}

    def train_tail(self, state: TrainState, data: data_lib.Dataset, perm: jax.Array, start: int
                   ) -> tuple[TrainState, Metrics]:
        """The epoch's last, shorter batch ``perm[start:]`` (the reference's drop_last=False)."""
        state, metrics = self._step(state, data_lib.take_rows(data, perm[start:]))
        return state, {**metrics, "finite": is_finite(state)}

    def permutations(self, epoch: jax.Array, n: int) -> jax.Array:
        """The order in which epoch ``epoch`` visits the ``n`` images."""
        return data_lib.epoch_permutation(self.shuffle_key, epoch, n)

    def fixed_noise(self, n: int = 64) -> jax.Array:
        """The run's fixed noise for image grids (the reference's ``torch.rand(64, latent_dim)``)."""
        return self.grid_noise(self.fixed_key, n)

    def grid_noise(self, key: jax.Array, n: int = 64) -> jax.Array:
        """A grid's noise from ``key``: ``n`` vectors; a conditional run's, ``GRID_COLUMNS`` vectors
        repeated on each of its ``grid_classes`` rows (column j holds one z in every class)."""
        if not self.n_classes:
            return self.sample_noise(key, n)
        return jnp.tile(self.sample_noise(key, GRID_COLUMNS), (self.grid_classes, 1))

    def grid_labels(self) -> jax.Array | None:
        """A conditional grid's classes, row by row (class r on row r); None when unconditional."""
        if not self.n_classes:
            return None
        return jnp.repeat(jnp.arange(self.grid_classes, dtype=jnp.int32), GRID_COLUMNS)

    def grid(self, state: TrainState, fixed_noise: jax.Array) -> tuple[TrainState, jax.Array]:
        """The reference's per-epoch ``G(fixed_noise)``: G in training mode, so batch statistics
        are used and the running averages move, exactly as in PyTorch (a conditional run: one
        row per class, ``grid_labels``)."""
        images, g_stats = self.generate(state, fixed_noise, True, self.grid_labels())
        return state.replace(g_stats=g_stats), images


def _given(labels: jax.Array | None) -> dict[str, jax.Array]:
    # Labels go to a network only in a conditional run: an unconditional network takes none.
    return {} if labels is None else {"labels": labels}


def _loss_f32(result: tuple[TrainState, jax.Array]) -> tuple[TrainState, jax.Array]:
    state, loss = result
    return state, loss.astype(jnp.float32)


def is_finite(state: TrainState) -> jax.Array:
    """True when every parameter and BatchNorm statistic is finite (one fused reduction)."""
    leaves = jax.tree_util.tree_leaves((state.g_params, state.g_stats, state.d_params, state.d_stats))
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def optimizers(cfg: Config, lr: Any = None, beta1: Any = None, beta2: Any = None, g_lr: Any = None,
               d_lr: Any = None) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """G's and D's optimisers, as the family's reference builds them (``Family.optimizer``).
    ``lr``, ``beta1``, ``beta2``, ``g_lr``, ``d_lr`` replace the config's (they may be traced
    arrays, e.g. one per member of a vmapped population). G learns at ``g_lr`` (``--g_lr``), D at
    ``d_lr``; either unset (0) learns at ``lr``."""
    lr = cfg.lr if lr is None else lr
    g_lr = (cfg.g_lr or lr) if g_lr is None else g_lr
    d_lr = (cfg.d_lr or lr) if d_lr is None else d_lr
    beta1 = cfg.beta1 if beta1 is None else beta1
    beta2 = cfg.beta2 if beta2 is None else beta2

    def one(lr) -> optax.GradientTransformation:
        tx = cfg.family.optimizer(cfg, lr, beta1, beta2)
        if cfg.skip_nonfinite:
            # Skip an update whose gradients hold NaN/Inf; after 100 in a row let it through, so a
            # run that cannot recover is stopped by the trainer's non-finite check instead.
            tx = optax.apply_if_finite(tx, max_consecutive_errors=100)
        return tx

    return one(g_lr), one(d_lr)


def build(cfg: Config, mesh: Any = None, abstract: bool = False) -> tuple[GAN, TrainState]:
    """Create the family's models (its reference's initialisation) and optimisers; return (GAN,
    initial state). With a ``mesh``, batches are split over its devices (the state stays where the
    caller puts it). ``abstract``: the state as shapes and dtypes only, a template to restore into
    (nothing is initialised or allocated)."""
    keys = run_keys(cfg.seed)
    family = cfg.family

    def make_models():
        g_key, d_key = jax.random.split(keys["init"])
        return family.networks(cfg, g_key, d_key)

    g, d = nnx.eval_shape(make_models) if abstract else make_models()
    g_graph, g_params, g_stats = layers.split(g)
    d_graph, d_params, d_stats = layers.split(d)
    g_tx, d_tx = optimizers(cfg)
    gan = GAN(family=family, cfg=cfg, g_graph=g_graph, d_graph=d_graph, g_tx=g_tx, d_tx=d_tx,
              latent_dim=cfg.latent_dim, image_shape=cfg.image_shape, noise=cfg.noise, d_steps=cfg.d_steps,
              batch_size=cfg.batch_size, step_key=keys["step"], shuffle_key=keys["shuffle"],
              fixed_key=keys["fixed_noise"], joint_d_pass=not jax.tree_util.tree_leaves(d_stats), mesh=mesh,
              g_ema_decay=cfg.g_ema, chunk_steps=cfg.steps_per_call, n_classes=cfg.num_classes,
              g_labels=cfg.g_labels, grid_classes=cfg.grid_rows)

    def init_state(g_params, g_stats, d_params, d_stats):
        return TrainState(g_params=g_params, g_stats=g_stats, d_params=d_params, d_stats=d_stats,
                          g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params),
                          step=jnp.zeros((), jnp.int32),
                          g_ema=jax.tree_util.tree_map(jnp.array, g_params) if cfg.g_ema else None)

    if abstract:
        return gan, jax.eval_shape(init_state, g_params, g_stats, d_params, d_stats)
    return gan, init_state(g_params, g_stats, d_params, d_stats)
