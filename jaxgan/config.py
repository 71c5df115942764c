"""Run configuration: defaults (the reference's), YAML file, command-line flags; validated once.

Precedence is defaults < ``--config`` YAML < flags given on the command line. Every problem is
raised as :class:`ConfigError` with a one-line message; the CLIs turn it into ``error: ...`` on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import yaml


class ConfigError(ValueError):
    """A user-facing configuration problem; the message is one line."""


# Canonical dataset name -> (torchvision class name, image shape (C, H, W)).
DATASETS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "mnist": ("MNIST", (1, 28, 28)),
    "fashion_mnist": ("FashionMNIST", (1, 28, 28)),
    "cifar10": ("CIFAR10", (3, 32, 32)),
}
_ALIASES = {"fashionmnist": "fashion_mnist", "fashion-mnist": "fashion_mnist", "cifar-10": "cifar10"}


def canonical_dataset(name: str) -> str:
    """Map a user-typed dataset name (any case, common aliases) to its canonical name."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: mnist, fashion_mnist, cifar10")
    return key


@dataclass(frozen=True)
class Config:
    """Everything a training run depends on. Defaults are the PyTorch reference's."""

    dataset: str = "mnist"
    data_dir: str = "data"
    download: bool = True
    skip_checksums: bool = False
    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 64
    num_epochs: int = 100
    latent_dim: int = 100
    sample_dir: str = "samples"
    interval: int = 1
    logdir: str = "runs"
    ckpt_dir: str = "checkpoints"
    seed: int = 10213
    resume: bool = False
    ckpt_every: int = 0  # steps; 0 = once per epoch
    keep_checkpoints: int = 3
    loss: str = "nonsaturating"  # reference; "minimax" is the paper's saturating G loss
    noise: str = "uniform"  # reference: torch.rand, U[0, 1)
    d_steps: int = 1
    last_batch: str = "partial"  # reference DataLoader(drop_last=False); "drop" keeps one shape
    steps_per_call: int = 200  # training steps fused into one lax.scan call
    g_hidden: tuple[int, ...] = (128, 256, 512, 1024)
    d_hidden: tuple[int, ...] = (512, 256, 128)
    d_dropout: float = 0.3
    g_ema: float = 0.0  # decay of an exponential moving average of G's weights (0 = off)
    eval_every: int = 0  # epochs between sample-quality metrics in TensorBoard (0 = never)
    skip_nonfinite: bool = False  # skip updates with non-finite gradients (optax.apply_if_finite)
    matmul_dtype: str = "float32"  # "bfloat16": bf16 operands, fp32 accumulation (a deviation)
    coordinator_address: str = ""  # multi-process runs: host:port of process 0
    num_processes: int = 0
    process_id: int = -1
    progress: bool = True

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return DATASETS[self.dataset][1]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["g_hidden"], d["d_hidden"] = list(self.g_hidden), list(self.d_hidden)
        return d


# Fields that define the model, the data or the objective: a resumed run must agree on them.
MODEL_FIELDS = ("dataset", "latent_dim", "g_hidden", "d_hidden", "d_dropout", "loss", "noise",
                "d_steps", "batch_size", "last_batch", "seed", "matmul_dtype", "skip_nonfinite", "g_ema")
_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    """Convert a YAML/flag value to the field's type, or raise a one-line ConfigError."""
    default = _FIELDS[name].default
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, (bool, int)):
                return bool(value)
            raise ValueError
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            return tuple(int(v) for v in value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot read {value!r} as {type(default).__name__}") from None


def validate(cfg: Config) -> Config:
    """Check every field once; return the config with the dataset name made canonical."""
    cfg = dataclasses.replace(cfg, dataset=canonical_dataset(cfg.dataset))
    positive = ("batch_size", "num_epochs", "latent_dim", "interval", "d_steps", "steps_per_call",
                "keep_checkpoints")
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(cfg, name)}")
    if cfg.eval_every < 0:
        raise ConfigError(f"eval_every must be >= 0 (0 = never), got {cfg.eval_every}")
    if cfg.ckpt_every < 0:
        raise ConfigError(f"ckpt_every must be >= 0 (0 = once per epoch), got {cfg.ckpt_every}")
    if not cfg.lr > 0:
        raise ConfigError(f"lr must be positive, got {cfg.lr}")
    for name in ("beta1", "beta2"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if not 0.0 <= cfg.g_ema < 1.0:
        raise ConfigError(f"g_ema must be in [0, 1) (0 = off), got {cfg.g_ema}")
    if not 0.0 <= cfg.d_dropout < 1.0:
        raise ConfigError(f"d_dropout must be in [0, 1), got {cfg.d_dropout}")
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg.seed}")
    if not cfg.g_hidden or not cfg.d_hidden or min(cfg.g_hidden + cfg.d_hidden) <= 0:
        raise ConfigError("g_hidden and d_hidden must be non-empty lists of positive sizes")
    choices = {"loss": ("nonsaturating", "minimax"), "noise": ("uniform", "normal"),
               "last_batch": ("partial", "drop"), "matmul_dtype": ("float32", "bfloat16")}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(cfg, name)!r}")
    for name in ("data_dir", "sample_dir", "logdir", "ckpt_dir"):
        path = getattr(cfg, name)
        if os.path.exists(path) and not os.path.isdir(path):
            raise ConfigError(f"{name} {path!r} exists and is not a directory")
    return cfg


def load_yaml(path: str) -> dict[str, Any]:
    """Read a YAML config file into a dict of known fields, or raise a one-line ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config file {path!r}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of flag: value")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"config file {path!r} has unknown keys: {', '.join(unknown)}")
    return data


def from_dict(values: dict[str, Any]) -> Config:
    """Build and validate a Config from a dict of field values (unknown keys are an error)."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    return validate(Config(**{k: _coerce(k, v) for k, v in values.items()}))


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line on stderr and exits 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> OneLineParser:
    """Flags of ``python -m jaxgan.train``: the reference's, plus jaxgan's own."""
    p = OneLineParser(prog="python -m jaxgan.train", argument_default=argparse.SUPPRESS,
                      description="Train the original GAN (MLP G and D) in JAX/Flax.")
    p.add_argument("--config", help="YAML file of flag: value; flags on the command line win")
    p.add_argument("--dataset", help="mnist | fashion_mnist | cifar10 (any case; default mnist)")
    p.add_argument("--data_dir", help="torchvision dataset root (default data)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="never download; fail with a message saying which files to put where")
    p.add_argument("--skip_checksums", action="store_true",
                   help="accept CIFAR-10 pickles whose MD5 differs from the official files")
    p.add_argument("--lr", help="Adam learning rate (default 0.0002)")
    p.add_argument("--beta1", help="Adam beta1 (default 0.5)")
    p.add_argument("--beta2", help="Adam beta2 (default 0.999)")
    p.add_argument("--batch_size", help="mini-batch size (default 64)")
    p.add_argument("--num_epochs", help="training epochs, in total when resuming (default 100)")
    p.add_argument("--latent_dim", help="noise dimension (default 100)")
    p.add_argument("--sample_dir", help="image grids go to <sample_dir>/<dataset>/ (default samples)")
    p.add_argument("--interval", help="epochs between saved grids (default 1)")
    p.add_argument("--logdir", help="TensorBoard events go to <logdir>/<dataset>/ (default runs)")
    p.add_argument("--ckpt_dir", help="checkpoints go to <ckpt_dir>/<dataset>/ (default checkpoints)")
    p.add_argument("--seed", help="random seed (default 10213)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--ckpt_every", help="steps between checkpoints (default 0 = once per epoch)")
    p.add_argument("--keep_checkpoints", help="how many recent checkpoints to keep (default 3)")
    p.add_argument("--loss", help="nonsaturating (reference) | minimax (paper's saturating G loss)")
    p.add_argument("--noise", help="uniform (reference, U[0,1)) | normal (N(0,1))")
    p.add_argument("--d_steps", help="D updates per G update, Algorithm 1's k (default 1)")
    p.add_argument("--last_batch", help="partial (reference) | drop: the epoch's last short batch")
    p.add_argument("--steps_per_call", help="steps fused into one compiled call (default 200)")
    p.add_argument("--g_hidden", help="G's hidden widths, e.g. 128,256,512,1024 (reference)")
    p.add_argument("--d_hidden", help="D's hidden widths, e.g. 512,256,128 (reference)")
    p.add_argument("--d_dropout", help="D's dropout rate (reference 0.3)")
    p.add_argument("--g_ema", help="keep an exponential moving average of G's weights with this decay, "
                   "e.g. 0.999, and sample from it (default 0 = off; not in the reference)")
    p.add_argument("--eval_every", help="epochs between sample-quality metrics logged to TensorBoard "
                   "(needs `python -m jaxgan.evaluate --train-classifier` first; default 0 = never)")
    p.add_argument("--skip_nonfinite", action="store_true",
                   help="skip updates whose gradients are NaN/Inf instead of stopping the run")
    p.add_argument("--matmul_dtype", help="float32 (reference) | bfloat16: bf16 matmul operands, fp32 accumulation")
    p.add_argument("--coordinator_address", help="multi-process: host:port of process 0 (jax.distributed)")
    p.add_argument("--num_processes", help="multi-process: how many processes join the run")
    p.add_argument("--process_id", help="multi-process: this process's index, 0 .. num_processes-1")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse flags (and ``--config`` YAML) into a validated Config."""
    ns = vars(build_parser().parse_args(argv))
    values = load_yaml(ns.pop("config")) if "config" in ns else {}
    values.update(ns)
    return from_dict(values)
