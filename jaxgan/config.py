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

from jaxgan import families


class ConfigError(ValueError):
    """A user-facing configuration problem; the message is one line."""


# Canonical dataset name -> (torchvision class name, image shape (C, H, W)).
DATASETS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "mnist": ("MNIST", (1, 28, 28)),
    "fashion_mnist": ("FashionMNIST", (1, 28, 28)),
    "cifar10": ("CIFAR10", (3, 32, 32)),
}
DATASET_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}  # --conditional's label classes
_ALIASES = {"fashionmnist": "fashion_mnist", "fashion-mnist": "fashion_mnist", "cifar-10": "cifar10"}
FOLDER = "folder"  # --dataset folder --data_dir PATH: your own images (jaxgan.data.load_folder)
FOLDER_ONLY = ("held_out", "strict_images", "classes")  # flags only --dataset folder reads
FOLDER_IMAGE = (3, 64)  # a folder's channels and side unless --channels / --image_size say (trainer: its own channels)
# YAML keys that name a declared flag by the reference's other name.
YAML_ALIASES = {"n_critic": "d_steps"}


def dataset_name(dataset: str, data_dir: str) -> str:
    """The name that keys a dataset's runs, caches and judges: the dataset's own for the built-in
    ones; for a folder, its name plus a fingerprint of its absolute path (``faces-1a2b3c4d``), so
    two folders never share a checkpoint folder, even two of the same name, while one folder keeps
    its name when files are added (a resume then refuses the changed data)."""
    if dataset != FOLDER:
        return dataset
    import hashlib

    path = os.path.realpath(data_dir)
    name = os.path.basename(path.rstrip(os.sep)) or "root"
    return f"{name}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def run_folder(root: str, model: str, dataset: str) -> str:
    """Where a run's outputs go under ``root``: ``<root>/<dataset>`` for the MLP GAN (the
    reference's layout), ``<root>/<model>/<dataset>`` for the other families, so that runs of
    different models never share a checkpoint folder (``Family.run_folder``)."""
    return families.get(model).run_folder(root, dataset)


def canonical_dataset(name: str) -> str:
    """Map a user-typed dataset name (any case, common aliases) to its canonical name."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS and key != FOLDER:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: mnist, fashion_mnist, cifar10, "
                          "folder (with --data_dir PATH: your own images)")
    return key


REFUSE, ACCEPT = "refused", "accepted"  # what --resume does when a flag's value changed


def flag(default: Any, help: str, *, resume: str = ACCEPT, choices: tuple[str, ...] = (),
         aliases: tuple[str, ...] = (), cli: str | None = None, program: bool = True,
         family_only: bool = False) -> Any:
    """Declare one training flag, once: its default, its help line, and whether a resumed run may
    change it. The parser, the YAML loader, ``--help`` and the README's flag table all read this.
    ``cli``: a switch's spelling when the flag is set by its absence (``--no_download``).
    ``program=False``: the flag never changes the compiled training program (folders, run length,
    bookkeeping), so runs that differ only in such flags share one (``jaxgan.program``).
    ``family_only``: only the families that read it take it (``Family.reads``); given to another
    on the command line or in YAML, it is refused rather than silently ignored."""
    return dataclasses.field(default=default, metadata={
        "help": help, "resume": resume, "choices": choices, "aliases": aliases, "cli": cli, "program": program,
        "family_only": family_only})


@dataclass(frozen=True)
class Config:
    """Everything a training run depends on. Defaults are the PyTorch reference's."""

    dataset: str = flag("mnist", "mnist | fashion_mnist | cifar10 (any case) | folder: the images in --data_dir "
                        "(class subfolders are labels; see docs/data.md)", resume=REFUSE)
    model: str = flag("mlp", "the model family (`jaxgan.families`); each trains as its reference does, and flags "
                      "not given take that reference's defaults", resume=REFUSE)
    data_dir: str = flag("data", "torchvision dataset root; with --dataset folder: the folder of images", program=False)
    download: bool = flag(True, "never download; fail with a message saying which files to put where",
                          cli="--no_download", aliases=("--no-download",), program=False)
    skip_checksums: bool = flag(False, "accept CIFAR-10 pickles whose MD5 differs from the official files", program=False)
    lr: float = flag(0.0002, "learning rate of G and D (the family's optimiser: Adam, RMSprop for wgan)")
    beta1: float = flag(0.5, "Adam's beta1 (the families trained with Adam)")
    beta2: float = flag(0.999, "Adam's beta2 (the families trained with Adam)")
    batch_size: int = flag(64, "mini-batch size (the global batch with several devices)", resume=REFUSE)
    num_epochs: int = flag(100, "training epochs, in total when resuming (families reported per epoch)",
                           program=False, family_only=True)
    gen_iters: int = flag(100000, "generator iterations (each after d_steps critic steps), in total when "
                          "resuming (families reported per generator iterations)", program=False, family_only=True)
    latent_dim: int = flag(100, "noise dimension", resume=REFUSE)
    sample_dir: str = flag("samples", "image grids go to <sample_dir>/<dataset>/", program=False)
    interval: int = flag(1, "epochs between saved grids; families reported per generator iterations (wgan): generator iterations between grids, "
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
                     "E log(1-D(G(z))) (the paper's value function); BCE families", resume=REFUSE,
                     choices=("nonsaturating", "minimax"), family_only=True)
    noise: str = flag("uniform", "z ~ U[0,1) (reference's torch.rand) or normal N(0,1)", resume=REFUSE,
                      choices=("uniform", "normal"))
    d_steps: int = flag(1, "D updates per G update (Algorithm 1's k; a critic's n_critic, also spelled "
                        "--n_critic); each D update takes the next batch", resume=REFUSE,
                        aliases=("--n_critic",))
    clip_limit: float = flag(0.01, "wgan: every critic parameter is clamped to [-clip_limit, clip_limit] "
                             "after each critic step", resume=REFUSE, family_only=True)
    last_batch: str = flag("partial", "the epoch's short last batch: partial trains on it (reference), "
                           "drop skips it", resume=REFUSE, choices=("partial", "drop"), program=False)
    steps_per_call: int = flag(200, "training steps fused into one compiled lax.scan call")
    g_hidden: tuple[int, ...] = flag((128, 256, 512, 1024), "G's hidden widths; the conv families: its 4 channel "
                                     "widths, from the first (deepest) layer", resume=REFUSE)
    d_hidden: tuple[int, ...] = flag((512, 256, 128), "D's hidden widths; the conv families: its 4 channel widths, "
                                     "from the first layer", resume=REFUSE)
    d_dropout: float = flag(0.3, "D's dropout rate (mlp)", resume=REFUSE, family_only=True)
    g_ema: float = flag(0.0, "also keep an exponential moving average of G's weights with this decay "
                        "(e.g. 0.999); sample and evaluate draw from it; 0 = off", resume=REFUSE)
    eval_every: int = flag(0, "reporting periods (epochs; wgan: intervals) between sample-quality metrics (2,000 samples) "
                           "logged to TensorBoard under eval/; 0 = never", program=False)
    keep_best: str = flag("", "with --eval_every: keep the checkpoint that scores best by this metric "
                          "(fd: lowest Frechet distance, score: highest classifier score; class, with --conditional: "
                          "highest class attainment, the smallest share of its goal among label accuracy, the worst "
                          "class's and the worst class's recall over its ceiling) in <ckpt_dir>/<dataset>/best/; "
                          "empty = off", choices=("", "fd", "score", "class"), program=False)
    skip_nonfinite: bool = flag(False, "skip updates whose gradients hold NaN/Inf instead of stopping",
                                resume=REFUSE)
    matmul_dtype: str = flag("float32", "float32: true float32 matmuls on every backend (reference); "
                             "tf32: the backend's default precision (TF32 on NVIDIA GPUs); bfloat16: "
                             "bf16 operands, float32 accumulation", resume=REFUSE,
                             choices=("float32", "tf32", "bfloat16"))
    conv_impl: str = flag("auto", "the conv families: how convolutions are computed (the same mathematics, other "
                          "rounding): lax: XLA convolutions; matmul: patches times a kernel matrix, many "
                          "times faster on XLA's CPU backend; auto: matmul on CPU, lax elsewhere",
                          choices=("auto", "lax", "matmul"), family_only=True)
    compile_cache: str = flag("", "folder of XLA's persistent compilation cache; empty = "
                              "$JAXGAN_COMPILE_CACHE or ~/.cache/jaxgan/xla; none = off", program=False)
    coordinator_address: str = flag("", "multi-process: host:port of process 0 (jax.distributed)", program=False)
    num_processes: int = flag(0, "multi-process: how many processes join the run", program=False)
    process_id: int = flag(-1, "multi-process: this process's index, 0 .. num_processes-1", program=False)
    progress: bool = flag(True, "no progress bar", cli="--no_progress", aliases=("--no-progress",), program=False)
    # -- the images themselves (issue 19): applied once, when the uint8 cache is built --------
    image_size: int = flag(0, "side N of the square images trained on, by torchvision's Resize(N) + CenterCrop(N); "
                           "0 = the dataset's own at its family's size (folders: 64); conv families take "
                           "multiples of 16", resume=REFUSE)
    channels: int = flag(0, "1 (gray) or 3 (colour), converted by torchvision; 0 = the dataset's own (a folder's: 1 "
                         "when all its images are gray, else 3)",
                         resume=REFUSE)
    held_out: float = flag(0.1, "--dataset folder: the fraction of images held out as the metrics' ceiling, "
                           "chosen by a hash of each file's path (adding files never reshuffles it)", resume=REFUSE)
    strict_images: bool = flag(False, "--dataset folder: refuse a folder holding unreadable images instead of "
                               "skipping (and naming) them", program=False)
    # -- conditional GANs (issue 20) --
    conditional: bool = flag(False, "class-conditional G and D, each given the images' class labels (Mirza & "
                             "Osindero 2014): mlp, a label embedding concatenated to z and to the image; the conv "
                             "families, as --conv_cond says",
                             resume=REFUSE)
    g_labels: str = flag("uniform", "with --conditional, the classes G draws in training: uniform over the "
                         "classes, or data: the batch's own real labels in a random order (the data's "
                         "histogram)", resume=REFUSE, choices=("uniform", "data"))
    conv_cond: str = flag("planes", "with --conditional, how the conv families condition: planes (the one-hot label "
                          "concatenated to z, and as constant planes to D's input channels; the default by docs/quality.md's "
                          "rule, by a margin within the seeds' spread) or projection (class-conditional BatchNorm in G and a projection D; "
                          "Miyato & Koyama 2018)", resume=REFUSE, choices=("planes", "projection"), family_only=True)
    classes: int = flag(0, "--dataset folder with --conditional: its class count, read from its class subfolders "
                        "when the run starts (0 = read them; another number is refused)", resume=REFUSE)
    grid_classes: int = flag(10, "with --conditional, the classes shown in the grids (one row each, 8 noise "
                             "columns): the first N (a folder's: at most its classes)")
    g_lr: float = flag(0.0, "G's learning rate (TTUR, Heusel et al. 2017); 0 = --lr; with --population one value "
                       "or one per member")
    d_lr: float = flag(0.0, "D's (the critic's) learning rate; 0 = --lr; with --population one value or one per "
                       "member")
    # -- datasets larger than the device (issue 19) --
    data_budget: str = flag("auto", "device bytes the training images may take (e.g. 8G, 512M, 150000); a larger "
                            "dataset stays in host memory and each chunk's batches are gathered there and sent "
                            "ahead, with the same results bit for bit; auto = half the device's memory "
                            "(memory_stats bytes_limit), and no limit where the backend reports none (CPU)",
                            program=False)

    @property
    def family(self) -> "families.Family":
        """The model family that trains this run (``jaxgan.families``)."""
        return families.get(self.model)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model trains on: ``--channels`` or the dataset's own, at
        ``--image_size`` or the size its family trains the dataset at (the dataset's own for the
        MLP, 32x32 for DCGAN and WGAN; a folder's: 64x64)."""
        if self.dataset == FOLDER:
            (c, side), requested = FOLDER_IMAGE, self.image_size or FOLDER_IMAGE[1]
            h = w = side
        else:
            (c, h, w), requested = DATASETS[self.dataset][1], self.image_size
        c = self.channels or c
        size = self.family.image_size(h, requested)
        return (c, h, w) if size == h == w else (c, size, size)

    @property
    def data_name(self) -> str:
        """The name the run's folders are keyed by (``dataset_name``)."""
        return dataset_name(self.dataset, self.data_dir)

    @property
    def num_classes(self) -> int:
        """The classes a conditional run is conditioned on (every torchvision dataset here has 10;
        a folder: its class subfolders, ``classes``); 0 for an unconditional run."""
        if not self.conditional:
            return 0
        return self.classes if self.dataset == FOLDER else DATASET_CLASSES[self.dataset]

    @property
    def grid_rows(self) -> int:
        """A conditional run's grid rows: ``grid_classes``, at most its classes (a folder may have fewer)."""
        return min(self.grid_classes, self.num_classes) if self.num_classes else self.grid_classes

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name, value in d.items():
            if isinstance(value, tuple):
                d[name] = list(value)
        return d


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
# Fields that define the model, the data or the objective: a resumed run must agree on them.
MODEL_FIELDS = tuple(name for name, f in _FIELDS.items() if f.metadata["resume"] == REFUSE)
RUN_LENGTH_FLAGS = ("num_epochs", "gen_iters")  # schedule.Periods.length_flag of the two kinds
# Flags only some families read (see ``flag(family_only=True)``).
FAMILY_OPTIONS = tuple(name for name, f in _FIELDS.items() if f.metadata["family_only"])
# Fields that never change the compiled training program (see ``flag(program=False)``).
RUN_ONLY_FIELDS = tuple(name for name, f in _FIELDS.items() if not f.metadata["program"])


def program_key(cfg: Config) -> Config:
    """``cfg`` with every run-only field at its default: two runs with equal keys train with the
    same compiled program."""
    return dataclasses.replace(cfg, **{name: _FIELDS[name].default for name in RUN_ONLY_FIELDS})


_BYTE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def data_budget_bytes(text: str) -> int | None:
    """``--data_budget`` in bytes: a positive number with an optional K, M, G or T (powers of 1024;
    ``KiB``, ``MB``, ... spell the same); None for ``auto`` (the device's own, ``jaxgan.stream``)."""
    value = str(text).strip().lower()
    if value == "auto":
        return None
    number = value.removesuffix("ib").removesuffix("b")
    unit = number[-1:] if number[-1:] in _BYTE_UNITS else ""
    try:
        size = float(number[:len(number) - len(unit)])
    except ValueError:
        size = float("nan")
    if not (size * _BYTE_UNITS[unit] >= 1 and size < float("inf")):
        raise ConfigError(f"--data_budget must be auto or a positive size in bytes such as 8G, 512M or 150000, "
                          f"got {text!r}")
    return int(size * _BYTE_UNITS[unit])


PER_MEMBER = ("lr", "beta1", "beta2", "g_lr", "d_lr")  # may hold one value per member of a population


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
    family = families.get(cfg.model)  # an unknown model: a one-line error naming the known ones
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
            if name in ("g_lr", "d_lr"):
                if not v >= 0:
                    raise ConfigError(f"{name} must be positive (or 0: --lr), got {v}")
                continue
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
    if cfg.channels not in (0, 1, 3):
        raise ConfigError(f"--channels must be 1 (gray) or 3 (colour), got {cfg.channels}")
    if cfg.image_size < 0:
        raise ConfigError(f"--image_size must be positive (0 = the dataset's own), got {cfg.image_size}")
    if not 0.0 <= cfg.held_out < 1.0:
        raise ConfigError(f"--held_out must be in [0, 1), got {cfg.held_out}")
    if not cfg.g_hidden or not cfg.d_hidden or min(cfg.g_hidden + cfg.d_hidden) <= 0:
        raise ConfigError("g_hidden and d_hidden must be non-empty lists of positive sizes")
    for name, f in _FIELDS.items():
        allowed = f.metadata["choices"]
        if allowed and getattr(cfg, name) not in allowed:
            shown = ", ".join(a if a else "'' (off)" for a in allowed)
            raise ConfigError(f"{name} must be one of {shown}; got {getattr(cfg, name)!r}")
    if cfg.classes < 0 or (cfg.classes and not cfg.conditional):
        raise ConfigError(f"--classes {cfg.classes}: a conditional folder run's class count (with --conditional; "
                          "0 = read from its class subfolders)")
    if cfg.conv_cond != _FIELDS["conv_cond"].default and not cfg.conditional:
        raise ConfigError(f"--conv_cond {cfg.conv_cond} applies to conditional runs only (add --conditional)")
    if cfg.conditional and not family.conditional:
        takers = "|".join(n for n in families.names() if families.get(n).conditional)
        raise ConfigError(f"--conditional applies to --model {takers} only")
    # A folder's grids show at most its classes (Config.grid_rows): its count is read when the run starts.
    if cfg.conditional and cfg.dataset == FOLDER and cfg.grid_classes < 1:
        raise ConfigError(f"grid_classes must be >= 1, got {cfg.grid_classes}")
    if cfg.conditional and cfg.dataset != FOLDER and not 1 <= cfg.grid_classes <= cfg.num_classes:
        raise ConfigError(f"grid_classes must be in 1..{cfg.num_classes} (the classes of {cfg.dataset}), "
                          f"got {cfg.grid_classes}")
    data_budget_bytes(cfg.data_budget)
    family.check(cfg)
    # A folder's judge says which channels it reads when the run starts (quality.Evaluator).
    if cfg.eval_every and cfg.dataset != FOLDER and cfg.channels not in (0, DATASETS[cfg.dataset][1][0]):
        raise ConfigError(f"--eval_every: the judge of {cfg.dataset} reads {DATASETS[cfg.dataset][1][0]}-channel "
                          f"images, this run makes {cfg.channels}-channel ones")
    if cfg.keep_best and not cfg.eval_every:
        raise ConfigError("--keep_best needs --eval_every N (the epochs between evaluations)")
    if cfg.keep_best == "class" and not cfg.conditional:
        raise ConfigError("--keep_best class scores how a conditional G draws the asked classes: it needs --conditional")
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
    not given take the chosen family's reference defaults (``Family.defaults``), then Config's."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    model = str(values.get("model", _FIELDS["model"].default)).strip().lower()
    values = {**families.get(model).defaults, **values, "model": model}
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
    """A flag's default as the user would type it, then the families whose reference differs."""
    base = _FIELDS[name].default
    others = [f"{f.name} {_typed(f.defaults[name])}" for f in map(families.get, families.names())
              if name in f.defaults and f.defaults[name] != base]
    text = _typed(base)
    return f"{text}; {'; '.join(others)}" if others else text


def build_parser() -> OneLineParser:
    """Flags of ``python -m jaxgan.train``, generated from the Config declarations."""
    p = OneLineParser(prog="python -m jaxgan.train", argument_default=argparse.SUPPRESS,
                      description="Train the original GAN, or another family of GANs, in JAX/Flax.")
    p.add_argument("--config", help="YAML file of flag: value (see configs/); flags on the command line win")
    for name, f in _FIELDS.items():
        meta = f.metadata
        if isinstance(f.default, bool):
            spelling = meta["cli"] or f"--{name}"
            p.add_argument(spelling, *meta["aliases"], dest=name,
                           action="store_false" if f.default else "store_true", help=meta["help"])
        else:
            p.add_argument(f"--{name}", *meta["aliases"], dest=name,
                           help=f"{help_text(name)} (default {default_text(name)})")
    return p


def help_text(name: str) -> str:
    """A flag's help line; ``--model``'s lists every family with its own line."""
    text = _FIELDS[name].metadata["help"]
    if name == "model":
        text += ": " + "; ".join(f"{f.name}: {f.help}" for f in map(families.get, families.names()))
    return text


def flag_table() -> str:
    """The README's flag table, from the same declarations as the parser."""
    rows = ["| flag | default | on `--resume` | meaning |", "|---|---|---|---|"]
    for name, f in _FIELDS.items():
        meta = f.metadata
        if isinstance(f.default, bool):
            spelling, default = (meta["cli"], "off") if f.default else (f"--{name}", "off")
        else:
            spelling, default = f"--{name}", f"`{default_text(name)}`"
        text = help_text(name).replace("|", "\\|")
        rows.append(f"| `{spelling}` | {default} | {meta['resume']} | {text} |")
    return "\n".join(rows)


# What a run recorded before a field existed was trained with, where that is not today's default:
# conditional conv runs were all projection runs before --conv_cond (and planes its default).
WAS_BEFORE = {"conv_cond": "projection"}


def applies(name: str, values: dict) -> bool:
    """Whether a run of these settings reads field ``name`` (a family option of another family, or
    --conv_cond of an unconditional run, changes nothing)."""
    if name in FAMILY_OPTIONS and not families.get(values.get("model", "mlp")).reads(name):
        return False
    return name != "conv_cond" or bool(values.get("conditional"))


def recorded(saved: dict) -> dict:
    """A checkpoint record's config as the run it describes was trained: a field the record lacks
    (written before the field existed) is what such runs had (``WAS_BEFORE``), else its default;
    a field that run does not read is at its default."""
    values = dict(saved)
    for name, was in WAS_BEFORE.items():
        values.setdefault(name, was)
    for name in list(values):
        if name in _FIELDS and not applies(name, values):
            values[name] = _FIELDS[name].default
    return values


def check_resume_config(saved: dict, cfg: Config) -> list[str]:
    """Refuse to resume with settings that change the model, the data or the objective; return the
    other settings that changed, as ``name old -> new`` (the trainer says them)."""
    new = cfg.to_dict()
    saved = recorded(saved) if saved else saved
    for name in MODEL_FIELDS:
        if not applies(name, new):
            continue
        # A record written before a flag existed was trained with what is now its default (e.g.
        # model=mlp): a run asking for another value is refused, not restored into the wrong shapes.
        was = saved.get(name, _FIELDS[name].default) if saved else new[name]
        was = list(was) if isinstance(was, tuple) else was
        if was != new[name]:
            # The run may ask for the other value by a default, not a flag: name the flag that matches.
            hint = (f"set {name}={was!r} as the checkpoint has it" if isinstance(was, bool) else
                    f"pass --{name} {','.join(map(str, was)) if isinstance(was, list) else was}")
            raise ConfigError(f"--resume: the checkpoint was trained with {name}={was!r}, "
                              f"this run asks for {name}={new[name]!r}; {hint} or use another --ckpt_dir")
    return [f"{k} {saved[k]!r} -> {new[k]!r}" for k in sorted(saved)
            if k in new and k not in MODEL_FIELDS and k != "resume" and saved[k] != new[k]]


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse flags (and ``--config`` YAML) into a validated Config."""
    ns = vars(build_parser().parse_args(argv))
    values = load_yaml(ns.pop("config")) if "config" in ns else {}
    values.update(ns)
    cfg = from_dict(values)
    for name in FOLDER_ONLY:  # the same for a folder's flags on a built-in dataset
        if name in values and cfg.dataset != FOLDER:
            raise ConfigError(f"--{name} applies to --dataset folder only (the built-in datasets have their own split)")
    # A flag this family does not read would be silently ignored: say so instead.
    if "conv_cond" in values and not cfg.conditional and cfg.family.reads("conv_cond"):
        raise ConfigError(f"--conv_cond {cfg.conv_cond} applies to conditional runs only (add --conditional)")
    for name in values:
        if name in FAMILY_OPTIONS and not cfg.family.reads(name):
            takers = "|".join(f.name for f in map(families.get, families.names()) if f.reads(name))
            length = cfg.family.periods.length_flag
            if name in RUN_LENGTH_FLAGS:
                raise ConfigError(f"--{name} applies to --model {takers} only: --model {cfg.model} runs for "
                                  f"--{length}, and --{name} does not apply to it")
            raise ConfigError(f"--{name} applies to --model {takers} only")
    return cfg
