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
MODELS = ("mlp", "dcgan", "wgan")
CONV_IMAGE_SIZE = 32  # dcgan/train.py's image_size for all three datasets (MNIST is resized to it)
DCGAN_G_HIDDEN, DCGAN_D_HIDDEN = (1024, 512, 256, 128), (128, 256, 512, 1024)

# Each reference script's own defaults where they differ from the MLP's (gan/train.py): a run with
# --model dcgan|wgan takes these for every flag that neither the command line nor the YAML gives.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {},
    "dcgan": {"batch_size": 128, "num_epochs": 200, "g_hidden": DCGAN_G_HIDDEN, "d_hidden": DCGAN_D_HIDDEN},
    # wgan/train.py: RMSprop(5e-5), batch 64, 100,000 generator iterations of 5 critic steps,
    # a grid every 1,000 generator iterations; its batch generator skips each epoch's short batch.
    "wgan": {"lr": 0.00005, "batch_size": 64, "d_steps": 5, "interval": 1000, "last_batch": "drop",
             "g_hidden": DCGAN_G_HIDDEN, "d_hidden": DCGAN_D_HIDDEN},
}
# YAML keys that name a declared flag by the reference's other name.
YAML_ALIASES = {"n_critic": "d_steps"}


def run_folder(root: str, model: str, dataset: str) -> str:
    """Where a run's outputs go under ``root``: ``<root>/<dataset>`` for the MLP GAN (the
    reference's layout), ``<root>/<model>/<dataset>`` for dcgan and wgan, so that runs of
    different models never share a checkpoint folder."""
    return os.path.join(root, dataset) if model == "mlp" else os.path.join(root, model, dataset)


def canonical_dataset(name: str) -> str:
    """Map a user-typed dataset name (any case, common aliases) to its canonical name."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: mnist, fashion_mnist, cifar10")
    return key


REFUSE, ACCEPT = "refused", "accepted"  # what --resume does when a flag's value changed


def flag(default: Any, help: str, *, resume: str = ACCEPT, choices: tuple[str, ...] = (),
         aliases: tuple[str, ...] = (), cli: str | None = None, program: bool = True) -> Any:
    """Declare one training flag, once: its default, its help line, and whether a resumed run may
    change it. The parser, the YAML loader, ``--help`` and the README's flag table all read this.
    ``cli``: a switch's spelling when the flag is set by its absence (``--no_download``).
    ``program=False``: the flag never changes the compiled training program (folders, run length,
    bookkeeping), so runs that differ only in such flags share one (``jaxgan.program``)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "resume": resume, "choices": choices, "aliases": aliases, "cli": cli, "program": program})


@dataclass(frozen=True)
class Config:
    """Everything a training run depends on. Defaults are the PyTorch reference's."""

    dataset: str = flag("mnist", "mnist | fashion_mnist | cifar10 (any case)", resume=REFUSE)
    model: str = flag("mlp", "mlp: the original GAN's MLPs (reference gan/); dcgan: DCGAN's convolutional "
                      "G and D, BCE losses, Adam (dcgan/); wgan: the same networks as a weight-clipped WGAN "
                      "critic and generator, RMSprop (wgan/). Conv models train on 32x32 images (MNIST and "
                      "FashionMNIST resized by torchvision's Resize(32)); flags not given take the chosen "
                      "reference's defaults. D(x), D(G(z)) are mean probabilities, for wgan the critic's raw "
                      "mean scores", resume=REFUSE, choices=MODELS)
    data_dir: str = flag("data", "torchvision dataset root", program=False)
    download: bool = flag(True, "never download; fail with a message saying which files to put where",
                          cli="--no_download", aliases=("--no-download",), program=False)
    skip_checksums: bool = flag(False, "accept CIFAR-10 pickles whose MD5 differs from the official files", program=False)
    lr: float = flag(0.0002, "learning rate, G and D (Adam; RMSprop for wgan)")
    beta1: float = flag(0.5, "Adam beta1 (mlp, dcgan)")
    beta2: float = flag(0.999, "Adam beta2 (mlp, dcgan)")
    batch_size: int = flag(64, "mini-batch size (the global batch with several devices)", resume=REFUSE)
    num_epochs: int = flag(100, "training epochs, in total when resuming (mlp, dcgan)", program=False)
    gen_iters: int = flag(100000, "wgan: generator iterations (each after d_steps critic steps), in total "
                          "when resuming", program=False)
    latent_dim: int = flag(100, "noise dimension", resume=REFUSE)
    sample_dir: str = flag("samples", "image grids go to <sample_dir>/<dataset>/", program=False)
    interval: int = flag(1, "epochs between saved grids; wgan: generator iterations between grids, "
                         "TensorBoard scalars (their means) and checkpoints", program=False)
    logdir: str = flag("runs", "TensorBoard events go to <logdir>/<dataset>/", program=False)
    ckpt_dir: str = flag("checkpoints", "checkpoints go to <ckpt_dir>/<dataset>/", program=False)
    seed: int = flag(10213, "one seed for everything: init, shuffling, noise, dropout", resume=REFUSE)
    population: int = flag(1, "train this many independent runs of the model as one compiled program "
                           "(vmap); member i has seed seed+i (or --seeds); --lr/--beta1/--beta2 take one "
                           "value or one per member", resume=REFUSE)
    seeds: tuple[int, ...] = flag((), "with --population: the members' seeds, e.g. 1,2,3 (empty = seed, "
                                  "seed+1, ...)", resume=REFUSE)
    resume: bool = flag(False, "continue from the newest checkpoint in <ckpt_dir>/<dataset>/", program=False)
    ckpt_every: int = flag(0, "steps (D updates) between checkpoints; 0 = once per epoch (wgan: per "
                           "interval)", program=False)
    keep_checkpoints: int = flag(3, "how many recent checkpoints to keep", program=False)
    loss: str = flag("nonsaturating", "G's loss: nonsaturating -E log D(G(z)) (reference) or minimax "
                     "E log(1-D(G(z))) (the paper's value function)", resume=REFUSE,
                     choices=("nonsaturating", "minimax"))
    noise: str = flag("uniform", "z ~ U[0,1) (reference's torch.rand) or normal N(0,1)", resume=REFUSE,
                      choices=("uniform", "normal"))
    d_steps: int = flag(1, "D updates per G update (Algorithm 1's k; wgan's n_critic, also spelled "
                        "--n_critic); each D update takes the next batch", resume=REFUSE,
                        aliases=("--n_critic",))
    clip_limit: float = flag(0.01, "wgan: every critic parameter is clamped to [-clip_limit, clip_limit] "
                             "after each critic step", resume=REFUSE)
    last_batch: str = flag("partial", "the epoch's short last batch: partial trains on it (reference), "
                           "drop skips it", resume=REFUSE, choices=("partial", "drop"), program=False)
    steps_per_call: int = flag(200, "training steps fused into one compiled lax.scan call")
    g_hidden: tuple[int, ...] = flag((128, 256, 512, 1024), "G's hidden widths; dcgan/wgan: its 4 channel "
                                     "widths, from the first (deepest) layer", resume=REFUSE)
    d_hidden: tuple[int, ...] = flag((512, 256, 128), "D's hidden widths; dcgan/wgan: its 4 channel widths, "
                                     "from the first layer", resume=REFUSE)
    d_dropout: float = flag(0.3, "D's dropout rate (mlp)", resume=REFUSE)
    g_ema: float = flag(0.0, "also keep an exponential moving average of G's weights with this decay "
                        "(e.g. 0.999); sample and evaluate draw from it; 0 = off", resume=REFUSE)
    eval_every: int = flag(0, "epochs (wgan: intervals) between sample-quality metrics (2,000 samples) "
                           "logged to TensorBoard under eval/; 0 = never", program=False)
    keep_best: str = flag("", "with --eval_every: keep the checkpoint that scores best by this metric "
                          "(fd: lowest Frechet distance, score: highest classifier score) in "
                          "<ckpt_dir>/<dataset>/best/; empty = off", choices=("", "fd", "score"), program=False)
    skip_nonfinite: bool = flag(False, "skip updates whose gradients hold NaN/Inf instead of stopping",
                                resume=REFUSE)
    matmul_dtype: str = flag("float32", "float32: true float32 matmuls on every backend (reference); "
                             "tf32: the backend's default precision (TF32 on NVIDIA GPUs); bfloat16: "
                             "bf16 operands, float32 accumulation", resume=REFUSE,
                             choices=("float32", "tf32", "bfloat16"))
    conv_impl: str = flag("auto", "dcgan/wgan: how convolutions are computed (the same mathematics, other "
                          "rounding): lax: XLA convolutions; matmul: patches times a kernel matrix, many "
                          "times faster on XLA's CPU backend; auto: matmul on CPU, lax elsewhere",
                          choices=("auto", "lax", "matmul"))
    compile_cache: str = flag("", "folder of XLA's persistent compilation cache; empty = "
                              "$JAXGAN_COMPILE_CACHE or ~/.cache/jaxgan/xla; none = off", program=False)
    coordinator_address: str = flag("", "multi-process: host:port of process 0 (jax.distributed)", program=False)
    num_processes: int = flag(0, "multi-process: how many processes join the run", program=False)
    process_id: int = flag(-1, "multi-process: this process's index, 0 .. num_processes-1", program=False)
    progress: bool = flag(True, "no progress bar", cli="--no_progress", aliases=("--no-progress",), program=False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model trains on: the dataset's own, or 32x32 for conv models."""
        c, h, w = DATASETS[self.dataset][1]
        return (c, h, w) if self.model == "mlp" else (c, CONV_IMAGE_SIZE, CONV_IMAGE_SIZE)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name, value in d.items():
            if isinstance(value, tuple):
                d[name] = list(value)
        return d


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
# Fields that define the model, the data or the objective: a resumed run must agree on them.
MODEL_FIELDS = tuple(name for name, f in _FIELDS.items() if f.metadata["resume"] == REFUSE)
# Fields that never change the compiled training program (see ``flag(program=False)``).
RUN_ONLY_FIELDS = tuple(name for name, f in _FIELDS.items() if not f.metadata["program"])


def program_key(cfg: Config) -> Config:
    """``cfg`` with every run-only field at its default: two runs with equal keys train with the
    same compiled program."""
    return dataclasses.replace(cfg, **{name: _FIELDS[name].default for name in RUN_ONLY_FIELDS})


PER_MEMBER = ("lr", "beta1", "beta2")  # may hold one value per member of a population


def per_member(value: Any) -> tuple:
    """A per-member setting as a tuple (one value means: the same for every member)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


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
            if name in PER_MEMBER and (isinstance(value, (list, tuple)) or "," in str(value)):
                # Every entry must be a number: "1e-4,,2e-4" and "2e-4," are refused, not guessed at.
                parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
                values = tuple(float(v) for v in parts)
                return values[0] if len(values) == 1 else values
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):  # "64,32,16,8" or "64 32 16 8"; an empty entry is an error
                parts = value.split(",") if "," in value else value.split()
                return tuple(int(v) for v in parts)
            return tuple(int(v) for v in value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot read {value!r} as {type(default).__name__}") from None


def validate(cfg: Config) -> Config:
    """Check every field once; return the config with the dataset name made canonical."""
    cfg = dataclasses.replace(cfg, dataset=canonical_dataset(cfg.dataset))
    positive = ("batch_size", "num_epochs", "gen_iters", "latent_dim", "interval", "steps_per_call",
                "keep_checkpoints")
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(cfg, name)}")
    if cfg.d_steps <= 0:
        raise ConfigError(f"d_steps (--n_critic) must be positive, got {cfg.d_steps}")
    if not cfg.clip_limit > 0:
        raise ConfigError(f"clip_limit must be positive, got {cfg.clip_limit}")
    if cfg.eval_every < 0:
        raise ConfigError(f"eval_every must be >= 0 (0 = never), got {cfg.eval_every}")
    if cfg.ckpt_every < 0:
        raise ConfigError(f"ckpt_every must be >= 0 (0 = once per epoch), got {cfg.ckpt_every}")
    if cfg.population < 1:
        raise ConfigError(f"population must be positive, got {cfg.population}")
    if cfg.seeds and len(cfg.seeds) != cfg.population:
        raise ConfigError(f"--seeds needs {cfg.population} values (one per member of --population "
                          f"{cfg.population}), got {len(cfg.seeds)}")
    if cfg.population > 1 and cfg.eval_every:
        raise ConfigError("--eval_every scores one run; with --population, score the members afterwards "
                          "with `python -m jaxgan.evaluate` (all of them, or --member i)")
    for name in PER_MEMBER:
        values = per_member(getattr(cfg, name))
        if len(values) not in (1, cfg.population):
            raise ConfigError(f"{name}: give one value or one per member (--population {cfg.population}), "
                              f"got {len(values)}")
        for v in values:
            if name == "lr" and not v > 0:
                raise ConfigError(f"lr must be positive, got {v}")
            if name != "lr" and not 0.0 <= v < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {v}")
    if not 0.0 <= cfg.g_ema < 1.0:
        raise ConfigError(f"g_ema must be in [0, 1) (0 = off), got {cfg.g_ema}")
    if not 0.0 <= cfg.d_dropout < 1.0:
        raise ConfigError(f"d_dropout must be in [0, 1), got {cfg.d_dropout}")
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg.seed}")
    if not cfg.g_hidden or not cfg.d_hidden or min(cfg.g_hidden + cfg.d_hidden) <= 0:
        raise ConfigError("g_hidden and d_hidden must be non-empty lists of positive sizes")
    for name, f in _FIELDS.items():
        allowed = f.metadata["choices"]
        if allowed and getattr(cfg, name) not in allowed:
            shown = ", ".join(a if a else "'' (off)" for a in allowed)
            raise ConfigError(f"{name} must be one of {shown}; got {getattr(cfg, name)!r}")
    if cfg.model != "mlp":
        for name, ref in (("g_hidden", DCGAN_G_HIDDEN), ("d_hidden", DCGAN_D_HIDDEN)):
            if len(getattr(cfg, name)) != 4:
                raise ConfigError(f"--{name} needs exactly 4 channel widths for --model {cfg.model} "
                                  f"(the reference's: {','.join(map(str, ref))}), got "
                                  f"{','.join(map(str, getattr(cfg, name)))}")
    if cfg.model == "wgan":
        if cfg.last_batch != "drop":
            raise ConfigError("--model wgan trains on full batches only (the reference skips each epoch's "
                              "short last batch); --last_batch partial does not apply")
        if cfg.loss != "nonsaturating":
            raise ConfigError("--loss applies to the BCE models (mlp, dcgan); wgan's losses are the critic's")
    if cfg.keep_best and not cfg.eval_every:
        raise ConfigError("--keep_best needs --eval_every N (the epochs between evaluations)")
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
    for alias, name in YAML_ALIASES.items():
        if alias in data:
            if name in data:
                raise ConfigError(f"config file {path!r} gives both {alias} and {name} (the same setting)")
            data[name] = data.pop(alias)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"config file {path!r} has unknown keys: {', '.join(unknown)}")
    return data


def from_dict(values: dict[str, Any]) -> Config:
    """Build and validate a Config from a dict of field values (unknown keys are an error). Keys
    not given take the chosen model's reference defaults (``MODEL_DEFAULTS``), then Config's."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    model = str(values.get("model", _FIELDS["model"].default)).strip().lower()
    if model not in MODELS:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}; got {values['model']!r}")
    values = {**MODEL_DEFAULTS[model], **values, "model": model}
    return validate(Config(**{k: _coerce(k, v) for k, v in values.items()}))


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line on stderr and exits 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _typed(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return repr(value) if value == "" else str(value)


def default_text(name: str) -> str:
    """A flag's default as the user would type it, then the models whose reference differs."""
    base = _FIELDS[name].default
    others = [f"{model} {_typed(d[name])}" for model, d in MODEL_DEFAULTS.items()
              if name in d and d[name] != base]
    text = _typed(base)
    return f"{text}; {'; '.join(others)}" if others else text


def build_parser() -> OneLineParser:
    """Flags of ``python -m jaxgan.train``, generated from the Config declarations."""
    p = OneLineParser(prog="python -m jaxgan.train", argument_default=argparse.SUPPRESS,
                      description="Train the original GAN (MLP G and D), DCGAN or WGAN in JAX/Flax.")
    p.add_argument("--config", help="YAML file of flag: value (see configs/); flags on the command line win")
    for name, f in _FIELDS.items():
        meta = f.metadata
        if isinstance(f.default, bool):
            spelling = meta["cli"] or f"--{name}"
            p.add_argument(spelling, *meta["aliases"], dest=name,
                           action="store_false" if f.default else "store_true", help=meta["help"])
        else:
            p.add_argument(f"--{name}", *meta["aliases"], dest=name,
                           help=f"{meta['help']} (default {default_text(name)})")
    return p


def flag_table() -> str:
    """The README's flag table, from the same declarations as the parser."""
    rows = ["| flag | default | on `--resume` | meaning |", "|---|---|---|---|"]
    for name, f in _FIELDS.items():
        meta = f.metadata
        if isinstance(f.default, bool):
            spelling, default = (meta["cli"], "off") if f.default else (f"--{name}", "off")
        else:
            spelling, default = f"--{name}", f"`{default_text(name)}`"
        text = meta["help"].replace("|", "\\|")
        rows.append(f"| `{spelling}` | {default} | {meta['resume']} | {text} |")
    return "\n".join(rows)


def check_resume_config(saved: dict, cfg: Config) -> None:
    """Refuse to resume with settings that change the model, the data or the objective; say
    which of the other settings changed."""
    new = cfg.to_dict()
    for name in MODEL_FIELDS:
        # A record written before a flag existed was trained with what is now its default (e.g.
        # model=mlp): a run asking for another value is refused, not restored into the wrong shapes.
        was = saved.get(name, _FIELDS[name].default) if saved else new[name]
        was = list(was) if isinstance(was, tuple) else was
        if was != new[name]:
            raise ConfigError(f"--resume: the checkpoint was trained with {name}={was!r}, "
                              f"this run asks for {name}={new[name]!r}; drop the flag or use another --ckpt_dir")
    changed = [f"{k} {saved[k]!r} -> {new[k]!r}" for k in sorted(saved)
               if k in new and k not in MODEL_FIELDS and k != "resume" and saved[k] != new[k]]
    if changed:
        print("resume with changed settings: " + ", ".join(changed), flush=True)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse flags (and ``--config`` YAML) into a validated Config."""
    ns = vars(build_parser().parse_args(argv))
    values = load_yaml(ns.pop("config")) if "config" in ns else {}
    values.update(ns)
    cfg = from_dict(values)
    # A run-length flag of the other kind of loop would be silently ignored: say so instead.
    if cfg.model == "wgan" and "num_epochs" in values:
        raise ConfigError("--model wgan runs for --gen_iters generator iterations; --num_epochs does not apply")
    for name in ("gen_iters", "clip_limit"):
        if cfg.model != "wgan" and name in values:
            raise ConfigError(f"--{name} applies to --model wgan only")
    return cfg
