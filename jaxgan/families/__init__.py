"""Model families: each one module, behind this registry; nothing else in jaxgan asks for a name.

A family (:class:`Family`) holds everything that makes one kind of GAN what it is: its networks,
its D and G objectives, its post-critic hook (WGAN's clipping), its optimisers, its reporting
period, its reference defaults and what its D(x) / D(G(z)) columns mean. The trainer, the
schedule, the steps, the configuration and the commands ask the family of the run.

    from jaxgan import families
    families.get("dcgan").networks(cfg, g_key, d_key)

A new family is one module and one line in ``BUILTIN``; outside code (a test, a plug-in) can
``register`` an instance at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: importing them here would pull jax into config
    import jax
    import optax
    from flax import nnx

    from jaxgan.config import Config
    from jaxgan.schedule import Periods

# The registry: family name -> the module that defines ``FAMILY`` (imported on first use).
BUILTIN: dict[str, str] = {
    "mlp": "jaxgan.families.mlp",
    "dcgan": "jaxgan.families.dcgan",
    "wgan": "jaxgan.families.wgan",
    "wgan_gp": "jaxgan.families.wgan_gp",
}
_loaded: dict[str, "Family"] = {}


class Family:
    """One kind of GAN. Subclasses set the attributes and implement :meth:`networks`,
    :meth:`optimizer`, :meth:`d_loss` and :meth:`g_loss`; the rest have defaults."""

    name: str = ""
    help: str = ""  # one line for --help and the flag table
    # The reference's defaults for flags that neither the command line nor the YAML gives.
    defaults: Mapping[str, Any] = {}
    # Flags only some families read (config.FAMILY_OPTIONS): those this family reads. A run-length
    # flag is read through ``periods`` (num_epochs or gen_iters) and need not be listed.
    options: frozenset[str] = frozenset()
    conditional: bool = False  # it can train class-conditionally (--conditional)
    critic: bool = False  # D's outputs are a critic's raw scores (reported as such), not logits
    own_folder: bool = True  # outputs under <dir>/<name>/<dataset>; False: <dir>/<dataset>

    @property
    def periods(self) -> "Periods":
        """How the run is measured and reported (default: in epochs)."""
        from jaxgan.schedule import EPOCHS

        return EPOCHS

    def reads(self, flag: str) -> bool:
        """Whether this family reads a family-only flag."""
        return flag in self.options or flag == self.periods.length_flag

    # -- configuration -------------------------------------------------------------------------
    def check(self, cfg: "Config") -> None:
        """Refuse settings this family cannot train with (raise ``config.ConfigError``)."""

    def image_size(self, native: int, requested: int = 0) -> int:
        """The side of the images it trains on, given the dataset's own and ``--image_size``
        (0: not given)."""
        return requested or native

    def run_folder(self, root: str, dataset: str) -> str:
        """Where a run's outputs go under ``root`` (checkpoints, grids, events)."""
        import os

        return os.path.join(root, self.name, dataset) if self.own_folder else os.path.join(root, dataset)

    # -- what is trained, and how --------------------------------------------------------------
    def networks(self, cfg: "Config", g_key: "jax.Array", d_key: "jax.Array") -> tuple["nnx.Module", "nnx.Module"]:
        """G and D, initialised as the reference initialises them. G is called as
        ``G(z, use_batch_stats)``, D as ``D(x, use_batch_stats, dropout_key)``; both on flat images.
        With ``cfg.num_classes`` (``--conditional``), both also take ``labels=`` (int (N,))."""
        raise NotImplementedError

    def optimizer(self, cfg: "Config", lr: Any, beta1: Any, beta2: Any) -> "optax.GradientTransformation":
        """The optimiser of G and of D (each gets its own state). ``lr``, ``beta1``, ``beta2`` may
        be traced arrays (one per member of a population)."""
        raise NotImplementedError

    def d_loss(self, real_out: "jax.Array", fake_out: "jax.Array", cfg: "Config") -> "jax.Array":
        """D's (the critic's) loss from its raw outputs on real and generated images."""
        raise NotImplementedError

    def g_loss(self, fake_out: "jax.Array", cfg: "Config") -> "jax.Array":
        """G's loss from D's raw outputs on G's images."""
        raise NotImplementedError

    def d_penalty(self, critic, real: "jax.Array", fake: "jax.Array", key: "jax.Array",
                  cfg: "Config") -> "jax.Array | None":
        """A term added to D's loss that needs D itself (``critic``: flat images -> raw outputs,
        differentiable in D's parameters), e.g. a gradient penalty; ``key`` is the step's own
        stream for it. None (the default): no term."""
        return None

    def after_d_update(self, d_params: Any, cfg: "Config") -> Any:
        """D's parameters after each optimiser step (WGAN: clipped). Default: unchanged."""
        return d_params

    def report(self, out: "jax.Array") -> "jax.Array":
        """What the D(x) / D(G(z)) columns show: the mean probability (default) or, for a critic,
        its mean raw score."""
        from jaxgan.losses import probability
        import jax.numpy as jnp

        return jnp.mean(out) if self.critic else jnp.mean(probability(out))


def register(family: Family) -> Family:
    """Make ``family`` available as ``--model <family.name>`` (replacing one of that name)."""
    if not family.name or not family.name.replace("_", "").isalnum():
        raise ValueError(f"a family needs a name of letters, digits and _, got {family.name!r}")
    _loaded[family.name] = family
    return family


def names() -> tuple[str, ...]:
    """Every family's name: the built-in ones first, then the registered ones."""
    return tuple(BUILTIN) + tuple(n for n in _loaded if n not in BUILTIN)


def get(name: str) -> Family:
    """The family called ``name``; ``config.ConfigError`` (one line) when there is none."""
    if name not in _loaded:
        if name not in BUILTIN:
            from jaxgan.config import ConfigError

            raise ConfigError(f"model must be one of {', '.join(names())}; got {name!r}")
        _loaded[name] = importlib.import_module(BUILTIN[name]).FAMILY
    return _loaded[name]
