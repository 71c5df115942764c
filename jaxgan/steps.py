"""Pure training steps: the D update, the G update, and many steps fused with ``lax.scan``; for
the MLP GAN, DCGAN and WGAN (``--model``).

Nothing here does I/O or runs Python per step. The training state is a plain pytree; every random
number of step ``s`` comes from ``fold_in(key(seed), s)``, so a run restored at step ``s`` draws
exactly what the uninterrupted run drew.

The loop is the reference's: for each batch, one D update on real and freshly generated images,
then one G update scored by the *updated* D (alternating, not simultaneous). G runs with batch
statistics in both updates, so, as in PyTorch, both forward passes move its BatchNorm running
averages. D's final sigmoid is folded into the losses (``log sigmoid(l) = -softplus(-l)``), which
equals the reference's ``BCELoss`` wherever that loss is finite and never returns ``inf``.

The convolutional models' D has BatchNorm, so its statistics are state too (``d_stats``) and real
and fake images go through D in separate training-mode passes, real first, as in the references;
D stays in training mode while it scores G's fakes for G's update, so that pass moves D's
statistics as well. WGAN: the critic minimises E D(G(z)) - E D(x), G minimises -E D(G(z)), both
with RMSprop; after each critic step every critic parameter is clamped to +-clip_limit; G is
updated after every ``d_steps`` (n_critic) critic steps, each on the next batch.
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
from jaxgan import dcgan, models, parallel
from jaxgan.config import Config

Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, and nothing else."""

    g_params: models.Params
    g_stats: models.Params
    d_params: models.Params
    d_stats: models.Params  # D's BatchNorm statistics: {} for the MLP (no leaves, same checkpoints)
    g_opt: Any
    d_opt: Any
    step: jax.Array  # int32 scalar: batches trained on so far (= D updates)
    g_ema: models.Params | None = None  # exponential moving average of g_params (--g_ema)


def run_keys(seed: int) -> dict[str, jax.Array]:
    """Independent random streams of a run, all derived from its seed."""
    root = jax.random.key(seed)
    return {name: jax.random.fold_in(root, i)
            for i, name in enumerate(("init", "fixed_noise", "shuffle", "step"))}


def d_loss_from_logits(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """L_D = -E log D(x) - E log(1 - D(G(z))), each term a batch mean, as BCE(real)+BCE(fake)."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def g_loss_from_logits(fake_logits: jax.Array, loss: str) -> jax.Array:
    """Non-saturating L_G = -E log D(G(z)) (reference), or minimax L_G = E log(1 - D(G(z)))."""
    if loss == "minimax":
        return jnp.mean(-jax.nn.softplus(fake_logits))
    return jnp.mean(jax.nn.softplus(-fake_logits))


@dataclass(frozen=True, eq=False)
class GAN:
    """The static half of training: model graphs, optimisers and options. Its methods are pure."""

    g_graph: nnx.GraphDef
    d_graph: nnx.GraphDef
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    latent_dim: int
    image_shape: tuple[int, int, int]
    loss: str
    noise: str
    d_steps: int
    batch_size: int
    step_key: jax.Array
    mesh: Any = None  # jax.sharding.Mesh: batches are split over its "data" axis
    g_ema_decay: float = 0.0
    model: str = "mlp"  # mlp | dcgan | wgan
    clip_limit: float = 0.01  # wgan: critic parameters are clamped to +-clip_limit
    chunk_steps: int = 200  # the most steps one train_chunk call runs (--steps_per_call)
    shuffle_key: jax.Array | None = None  # the epochs' permutations come from it
    fixed_key: jax.Array | None = None  # the grids' fixed noise comes from it

    @property
    def conv(self) -> bool:
        return self.model != "mlp"

    def _shard(self, x: jax.Array) -> jax.Array:
        return parallel.constrain_batch(x, self.mesh)

    # -- building blocks -------------------------------------------------------------------
    def sample_noise(self, key: jax.Array, n: int) -> jax.Array:
        """z ~ U[0, 1) (the reference's ``torch.rand``) or N(0, 1)."""
        shape = (n, self.latent_dim)
        if self.noise == "normal":
            return self._shard(jax.random.normal(key, shape, jnp.float32))
        return self._shard(jax.random.uniform(key, shape, jnp.float32))

    def generate(self, state: TrainState, z: jax.Array, use_batch_stats: bool = True
                 ) -> tuple[jax.Array, models.Params]:
        """G(z) as flat images, and G's BatchNorm statistics after the pass."""
        return self.apply_g(state.g_params, state.g_stats, z, use_batch_stats)

    def apply_g(self, g_params: models.Params, g_stats: models.Params, z: jax.Array,
                use_batch_stats: bool = True) -> tuple[jax.Array, models.Params]:
        apply = dcgan.apply_generator if self.conv else models.apply_generator
        return apply(self.g_graph, g_params, g_stats, z, use_batch_stats)

    def d_logits(self, d_params: models.Params, x: jax.Array, dropout_key: jax.Array | None
                 ) -> jax.Array:
        """The MLP D's logits (no statistics, dropout from ``dropout_key``)."""
        return models.discriminator_logits(self.d_graph, d_params, x, dropout_key)

    def d_forward(self, d_params: models.Params, d_stats: models.Params, x: jax.Array,
                  dropout_key: jax.Array | None) -> tuple[jax.Array, models.Params]:
        """D's raw outputs (logits; the critic's scores for WGAN) and its statistics after the pass,
        in training mode, as every reference runs D."""
        if self.conv:
            return dcgan.discriminator_logits(self.d_graph, d_params, d_stats, x, True)
        return self.d_logits(d_params, x, dropout_key), d_stats

    def d_loss(self, real_out: jax.Array, fake_out: jax.Array) -> jax.Array:
        if self.model == "wgan":
            return dcgan.wgan_critic_loss(real_out, fake_out)
        return d_loss_from_logits(real_out, fake_out)

    def g_loss(self, fake_out: jax.Array) -> jax.Array:
        if self.model == "wgan":
            return dcgan.wgan_generator_loss(fake_out)
        return g_loss_from_logits(fake_out, self.loss)

    def d_report(self, out: jax.Array) -> jax.Array:
        """What d_real/d_fake report: mean probability D(x) for BCE models, the critic's raw mean
        score for WGAN."""
        return jnp.mean(out) if self.model == "wgan" else jnp.mean(models.probability(out))

    # -- the two updates -------------------------------------------------------------------
    def d_update(self, state: TrainState, real: jax.Array, z: jax.Array, dropout_key: jax.Array
                 ) -> tuple[TrainState, Metrics]:
        """One optimiser step on D (WGAN: then clamped); G only produces (detached) fakes, moving
        its BatchNorm averages."""
        fake, g_stats = self.generate(state, z)
        fake = jax.lax.stop_gradient(fake)
        m = real.shape[0]

        def loss_fn(d_params):
            if self.conv:
                # D has batch statistics: the reference's two passes, real first.
                real_out, d_stats = self.d_forward(d_params, state.d_stats, real, dropout_key)
                fake_out, d_stats = self.d_forward(d_params, d_stats, fake, dropout_key)
            else:
                # One pass over real and fake together: the MLP's D is per-example (no batch
                # statistics), so this equals the reference's two passes and halves the launches.
                logits = self.d_logits(d_params, jnp.concatenate([real, fake]), dropout_key)
                real_out, fake_out, d_stats = logits[:m], logits[m:], state.d_stats
            return self.d_loss(real_out, fake_out), (real_out, fake_out, d_stats)

        (loss, (real_out, fake_out, d_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
        updates, d_opt = self.d_tx.update(grads, state.d_opt, state.d_params)
        d_params = optax.apply_updates(state.d_params, updates)
        if self.model == "wgan":
            d_params = dcgan.clip_params(d_params, self.clip_limit)
        state = state.replace(d_params=d_params, d_opt=d_opt, d_stats=d_stats, g_stats=g_stats)
        metrics = {"d_loss": loss, "d_real": self.d_report(real_out), "d_fake": self.d_report(fake_out)}
        return state, metrics

    def g_update(self, state: TrainState, z: jax.Array, dropout_key: jax.Array
                 ) -> tuple[TrainState, jax.Array]:
        """One optimiser step on G, scored by the current (already updated) D; D's parameters are
        not changed (a conv D's statistics move: it is in training mode, as in the references)."""

        def loss_fn(g_params):
            fake, g_stats = self.apply_g(g_params, state.g_stats, z, True)
            out, d_stats = self.d_forward(state.d_params, state.d_stats, fake, dropout_key)
            return self.g_loss(out), (g_stats, d_stats)

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
    def train_step(self, state: TrainState, real: jax.Array) -> tuple[TrainState, Metrics]:
        """One batch: a D update, then (every ``d_steps``-th batch) a G update; step += 1.
        WGAN: one critic step; G's step follows every ``d_steps`` (n_critic) of them."""
        key = jax.random.fold_in(self.step_key, state.step)
        k_zd, k_dd, k_zg, k_dg = jax.random.split(key, 4)
        m = real.shape[0]
        state, metrics = self.d_update(state, real, self.sample_noise(k_zd, m), k_dd)
        z_g = self.sample_noise(k_zg, m)
        if self.d_steps == 1:
            state, g_loss = self.g_update(state, z_g, k_dg)
            updated = jnp.float32(1.0)
        else:
            do_g = state.step % self.d_steps == self.d_steps - 1
            # The loss as float32 in both branches (a float64 run, as the parity tests make, too).
            state, g_loss = jax.lax.cond(do_g, lambda s: _loss_f32(self.g_update(s, z_g, k_dg)),
                                         lambda s: (s, jnp.float32(0.0)), state)
            updated = do_g.astype(jnp.float32)
        metrics.update(g_loss=g_loss, g_updated=updated)
        return state.replace(step=state.step + 1), metrics

    def train_chunk(self, state: TrainState, data: jax.Array, perm: jax.Array, start: jax.Array,
                    length: jax.Array) -> tuple[TrainState, Metrics]:
        """``length`` consecutive full batches ``start, start+1, ...`` of the epoch ordered by
        ``perm``, fused into one compiled loop. ``length`` is a traced scalar of at most
        ``chunk_steps``, so one program serves every chunk of a run, whatever its length (an epoch's
        remainder, a checkpoint boundary, a resume). Returns per-step metrics of shape
        (chunk_steps,), of which the first ``length`` were written."""

        def batch(i):
            return self._shard(data_lib.gather_batch(data, perm, start + i, self.batch_size))

        shapes = jax.eval_shape(lambda s, i: self.train_step(s, batch(i))[1], state, start)
        buffers = {k: jnp.zeros((self.chunk_steps,) + v.shape, v.dtype) for k, v in shapes.items()}

        def body(i, carry):
            state, buffers = carry
            state, metrics = self.train_step(state, batch(i))
            return state, {k: buffers[k].at[i].set(metrics[k]) for k in buffers}

        # Never more steps than there are slots: a longer request runs chunk_steps steps, and its
        # metrics and its state stay in step with each other.
        state, metrics = jax.lax.fori_loop(0, jnp.minimum(length, self.chunk_steps), body, (state, buffers))
        return state, {**metrics, "finite": is_finite(state)}

    def train_tail(self, state: TrainState, data: jax.Array, perm: jax.Array, start: int
                   ) -> tuple[TrainState, Metrics]:
        """The epoch's last, shorter batch ``perm[start:]`` (the reference's drop_last=False)."""
        real = self._shard(data_lib.normalize(jnp.take(data, perm[start:], axis=0)))
        state, metrics = self.train_step(state, real)
        return state, {**metrics, "finite": is_finite(state)}

    def permutations(self, epoch: jax.Array, n: int) -> jax.Array:
        """The order in which epoch ``epoch`` visits the ``n`` images."""
        return data_lib.epoch_permutation(self.shuffle_key, epoch, n)

    def fixed_noise(self, n: int = 64) -> jax.Array:
        """The run's fixed noise for image grids (the reference's ``torch.rand(64, latent_dim)``)."""
        return self.sample_noise(self.fixed_key, n)

    def grid(self, state: TrainState, fixed_noise: jax.Array) -> tuple[TrainState, jax.Array]:
        """The reference's per-epoch ``G(fixed_noise)``: G in training mode, so batch statistics
        are used and the running averages move, exactly as in PyTorch."""
        images, g_stats = self.generate(state, fixed_noise, use_batch_stats=True)
        return state.replace(g_stats=g_stats), images


def _loss_f32(result: tuple[TrainState, jax.Array]) -> tuple[TrainState, jax.Array]:
    state, loss = result
    return state, loss.astype(jnp.float32)


def is_finite(state: TrainState) -> jax.Array:
    """True when every parameter and BatchNorm statistic is finite (one fused reduction)."""
    leaves = jax.tree_util.tree_leaves((state.g_params, state.g_stats, state.d_params, state.d_stats))
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def optimizers(cfg: Config, lr: Any = None, beta1: Any = None, beta2: Any = None
               ) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """G's and D's optimisers as the chosen reference builds them. ``lr``, ``beta1``, ``beta2``
    replace the config's (they may be traced arrays, e.g. one per member of a vmapped population)."""
    lr = cfg.lr if lr is None else lr
    beta1 = cfg.beta1 if beta1 is None else beta1
    beta2 = cfg.beta2 if beta2 is None else beta2

    def one() -> optax.GradientTransformation:
        if cfg.model == "wgan":
            # torch.optim.RMSprop(lr) with PyTorch's defaults (jaxgan.dcgan.rmsprop says how).
            tx = dcgan.rmsprop(lr)
        else:
            # torch.optim.Adam(lr, betas=(beta1, beta2)), eps 1e-8: the same update rule as optax.adam.
            tx = optax.adam(lr, beta1, beta2, eps=1e-8)
        if cfg.skip_nonfinite:
            # Skip an update whose gradients hold NaN/Inf; after 100 in a row let it through, so a
            # run that cannot recover is stopped by the trainer's non-finite check instead.
            tx = optax.apply_if_finite(tx, max_consecutive_errors=100)
        return tx

    return one(), one()


def resolve_conv_impl(name: str) -> str:
    """A ``--conv_impl`` value with auto resolved for the backend JAX runs on: matmul on CPU
    (XLA:CPU's convolution gradients are slow, and many times slower inside lax.scan), lax elsewhere."""
    if name != "auto":
        return name
    return "matmul" if jax.default_backend() == "cpu" else "lax"


def conv_impl(cfg: Config) -> str:
    """The run's convolution form (``resolve_conv_impl`` of its ``--conv_impl``)."""
    return resolve_conv_impl(cfg.conv_impl)


def build(cfg: Config, mesh: Any = None, abstract: bool = False) -> tuple[GAN, TrainState]:
    """Create the models (reference initialisation) and optimisers; return (GAN, initial state).
    With a ``mesh``, batches are split over its devices (the state stays where the caller puts it).
    ``abstract``: the state as shapes and dtypes only, a template to restore into (nothing is
    initialised or allocated)."""
    keys = run_keys(cfg.seed)

    def make_models():
        g_key, d_key = jax.random.split(keys["init"])
        if cfg.model != "mlp":
            # dcgan/train.py applies its init_weight; wgan/train.py leaves PyTorch's defaults.
            init, conv = dcgan.REFERENCE_INIT[cfg.model], conv_impl(cfg)
            g = dcgan.Generator(cfg.latent_dim, cfg.image_shape, cfg.g_hidden, init=init,
                                compute_dtype=cfg.matmul_dtype, conv_impl=conv, rngs=nnx.Rngs(g_key))
            d = dcgan.Discriminator(cfg.image_shape, cfg.d_hidden, init=init, compute_dtype=cfg.matmul_dtype,
                                    conv_impl=conv, rngs=nnx.Rngs(d_key))
            return g, d
        g = models.Generator(cfg.latent_dim, cfg.image_shape, cfg.g_hidden, compute_dtype=cfg.matmul_dtype,
                             rngs=nnx.Rngs(g_key))
        d = models.Discriminator(cfg.image_shape, cfg.d_hidden, cfg.d_dropout, compute_dtype=cfg.matmul_dtype,
                                 rngs=nnx.Rngs(d_key))
        return g, d

    g, d = nnx.eval_shape(make_models) if abstract else make_models()
    g_graph, g_params, g_stats = models.split(g)
    d_graph, d_params, d_stats = models.split(d)
    g_tx, d_tx = optimizers(cfg)
    gan = GAN(g_graph=g_graph, d_graph=d_graph, g_tx=g_tx, d_tx=d_tx, latent_dim=cfg.latent_dim,
              image_shape=cfg.image_shape, loss=cfg.loss, noise=cfg.noise, d_steps=cfg.d_steps,
              batch_size=cfg.batch_size, step_key=keys["step"], mesh=mesh, g_ema_decay=cfg.g_ema,
              model=cfg.model, clip_limit=cfg.clip_limit, chunk_steps=cfg.steps_per_call,
              shuffle_key=keys["shuffle"], fixed_key=keys["fixed_noise"])

    def init_state(g_params, g_stats, d_params, d_stats):
        return TrainState(g_params=g_params, g_stats=g_stats, d_params=d_params, d_stats=d_stats,
                          g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params),
                          step=jnp.zeros((), jnp.int32),
                          g_ema=jax.tree_util.tree_map(jnp.array, g_params) if cfg.g_ema else None)

    if abstract:
        return gan, jax.eval_shape(init_state, g_params, g_stats, d_params, d_stats)
    return gan, init_state(g_params, g_stats, d_params, d_stats)

