"""One benchmark measurement, alone in this process.

    python -m benchmarks.bench_row SPEC.json OUT.json

``benchmarks/throughput.py`` starts one fresh interpreter per measurement, so no framework's
threads, allocator or compilation cache touches another's. SPEC's ``job`` is one of

  env        library versions, backends and device names seen by a fresh process
  row        training throughput of one implementation at one batch size (see ``IMPLS``)
  peak       a large matmul's rate in one framework at one precision
  bandwidth  a large array triad's memory bandwidth in one framework
  flops      XLA's cost analysis of one jaxgan training step at one batch size

This module imports neither torch nor jax at the top: each job imports only what it measures.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Impl:
    """One row kind: which framework, which pipeline, which optimiser, which precision."""

    label: str
    framework: str  # "torch" | "jax"
    what: str
    pipeline: str = "memory"  # torch: "loader" (the reference's DataLoader) | "memory"
    compile: str | None = None  # torch.compile mode
    adam: str = "default"  # torch Adam: "default" | "fast" (foreach on CPU, fused on CUDA)
    precision: str = "float32"  # "float32" (true fp32) | "tf32" | "bfloat16"
    steps_per_call: bool = True  # jax: fuse --steps_per_call steps per call (else 1)
    gpu_only: bool = False
    omp_wait: str | None = None  # OMP_WAIT_POLICY for this row; None: the run's --omp_wait_policy
    models: tuple[str, ...] = ("mlp", "dcgan", "wgan")  # the --model values this row kind applies to
    conv_impl: str = "auto"  # jax, dcgan/wgan: --conv_impl
    channels_last: bool = False  # torch, dcgan/wgan: channels_last modules and batches
    population: bool = False  # jax: --population K members under vmap (only with throughput.py --population)


IMPLS: dict[str, Impl] = {
    "torch_reference": Impl("(a)", "torch", "the reference as written: torchvision MNIST, per-image "
                            "(dcgan/wgan: Resize(32), then) ToTensor+Normalize, DataLoader(shuffle, --workers), its loop", pipeline="loader"),
    "torch_tuned": Impl("(b)", "torch", "(a)'s loop on the dataset held on the device as one uint8 "
                        "tensor, shuffled and normalised there"),
    "torch_tuned_spin": Impl("(b2)", "torch", "(b) with libgomp's default waiting (OMP_WAIT_POLICY unset: "
                             "idle threads spin before they sleep) instead of the run's --omp_wait_policy",
                             omp_wait="default"),
    "torch_compile": Impl("(c)", "torch", "(b) with G and D under torch.compile (default mode)",
                          compile="default"),
    "torch_fused_adam": Impl("(g)", "torch", "(b) with a multi-tensor Adam: foreach=True on CPU, "
                             "fused=True on CUDA (wgan: RMSprop, foreach=True)", adam="fast"),
    "torch_cudagraphs": Impl("(h)", "torch", "(g) with G and D under torch.compile(mode="
                             "'reduce-overhead') (CUDA graphs)", compile="reduce-overhead", adam="fast",
                             gpu_only=True),
    "torch_fused_adam_tf32": Impl("(i)", "torch", "(g) with TF32 matmuls (allow_tf32=True)", adam="fast",
                                  precision="tf32", gpu_only=True),
    "jax_per_step": Impl("(d)", "jax", "jaxgan's step, one jitted call per iteration", steps_per_call=False),
    "jax_scan": Impl("(e)", "jax", "jaxgan's training path: --steps_per_call steps fused in one "
                     "lax.scan call over the device-resident uint8 dataset"),
    "jax_scan_tf32": Impl("(j)", "jax", "(e) with --matmul_dtype tf32 (the backend's default "
                          "precision)", precision="tf32", gpu_only=True),
    "jax_scan_bf16": Impl("(f)", "jax", "(e) with --matmul_dtype bfloat16 (bf16 operands, fp32 "
                          "accumulation)", precision="bfloat16"),
    "torch_channels_last": Impl("(k)", "torch", "(b) with modules and batches in channels_last (NHWC), "
                                "the layout oneDNN and cuDNN prefer for convolutions", channels_last=True,
                                models=("dcgan", "wgan")),
    "jax_scan_other_conv": Impl("(l)", "jax", "(e) with the other --conv_impl than (e)'s auto: lax (XLA's "
                                "convolution ops) on CPU, matmul (patches x kernel matrix) elsewhere",
                                conv_impl="other", models=("dcgan", "wgan")),
    "jax_population": Impl("(p)", "jax", "(e) for K independent runs (--population K) under vmap in one "
                           "program; img/s counts the images of all members", population=True),
}
N_CRITIC = 5  # wgan/train.py's n_critic: one torch iteration of the WGAN loop consumes 5 batches

# Settings that change how a framework runs and are recorded with every measurement.
ENV_KEYS = ("CUDA_LAUNCH_BLOCKING", "CUDA_VISIBLE_DEVICES", "CUDA_MODULE_LOADING", "TORCH_USE_CUDA_DSA",
            "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_NO_CUDA_MEMORY_CACHING", "TORCHINDUCTOR_CACHE_DIR",
            "TORCH_COMPILE_DEBUG", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_AFFINITY", "GOMP_CPU_AFFINITY", "XLA_FLAGS", "JAX_PLATFORMS",
            "JAX_ENABLE_X64",
            "JAX_COMPILATION_CACHE_DIR", "JAX_DEFAULT_MATMUL_PRECISION", "XLA_PYTHON_CLIENT_PREALLOCATE",
            "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_ALLOCATOR", "TF_CPP_MIN_LOG_LEVEL",
            "NVIDIA_TF32_OVERRIDE", "PYTHONHASHSEED")


def env_settings() -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in ENV_KEYS}


def command_line() -> str:
    """This process's command as run from the repository root (paths inside it made relative)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def rel(arg: str) -> str:
        full = os.path.abspath(arg)
        return os.path.relpath(full, repo) if os.path.exists(full) and full.startswith(repo + os.sep) else arg

    script = rel(sys.argv[0])
    if script.endswith(".py") and not os.path.isabs(script):  # run as ``python -m package.module``
        script = "-m " + script[:-3].replace(os.sep, ".")
    return " ".join(["python", script, *(rel(a) for a in sys.argv[1:])])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def os_threads() -> int | None:
    """Threads this process holds now (Linux), a check on what the thread settings did."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def run_process_group(cmd: list[str], env: dict[str, str], cwd: str, log, timeout: float) -> int | str:
    """Run ``cmd`` in its own process group, output to ``log``; return its exit code, or why it was
    stopped. On a timeout or an interruption of this process the whole group is killed, so no
    DataLoader worker or compiler outlives it."""
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    finally:
        try:  # the group may outlive its leader (e.g. DataLoader workers): end them all
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``run_process_group``'s cleanup runs."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# -- timing ------------------------------------------------------------------------------------
def timed_blocks(run_block: Callable[[int], None], sync: Callable[[], None], min_time: float
                 ) -> dict[str, Any]:
    """Time equal blocks of calls until ``min_time`` seconds are timed (at least 2 blocks). The
    block size doubles from 1 until a block takes >= min_time / 8; the shorter blocks before it are
    extra warm-up and not counted. Returns the totals and every counted block's seconds."""
    block, blocks = 1, []
    while sum(blocks) < min_time or len(blocks) < 2:
        sync()
        t0 = time.perf_counter()
        run_block(block)
        sync()
        seconds = time.perf_counter() - t0
        if blocks or seconds >= min_time / 8 or block >= 1 << 16:
            blocks.append(seconds)
        else:
            block *= 2
    return {"calls": block * len(blocks), "seconds": sum(blocks), "block_calls": block,
            "block_seconds": blocks}


def tell_parent(message: str, wait: bool) -> None:
    """Tell the parent ``message`` when this row takes turns with others (``BENCH_TURN_FD``) and,
    with ``wait``, block on stdin until the parent says this row's next round may start."""
    fd = os.environ.get("BENCH_TURN_FD")
    if fd is None:
        return
    os.write(int(fd), (message + "\n").encode())
    if wait and sys.stdin.readline().strip() != "go":
        raise RuntimeError("the parent ended the rounds early")


def timed_rounds(run_block: Callable[[int], None], sync: Callable[[], None], min_time: float, rounds: int
                 ) -> dict[str, Any]:
    """``rounds`` rounds of ``timed_blocks``, each started when the parent gives this row its turn
    (rows interleaved A B C A B C, so that the machine's drift meets every row alike). Totals over
    all rounds, and each round's calls and seconds."""
    per_round = []
    for i in range(rounds):
        tell_parent("ready" if i == 0 else "done", wait=True)
        began = time.time()  # wall clock: comparable across the rows' processes
        per_round.append({**timed_blocks(run_block, sync, min_time), "began": began, "ended": time.time()})
    tell_parent("done", wait=False)
    return {"calls": sum(r["calls"] for r in per_round), "seconds": sum(r["seconds"] for r in per_round),
            "block_calls": per_round[-1]["block_calls"],
            "block_seconds": [s for r in per_round for s in r["block_seconds"]],
            "rounds": [{k: r[k] for k in ("calls", "seconds", "began", "ended")} for r in per_round]}


# -- env -----------------------------------------------------------------------------------------
def job_env(spec: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                           "cpu": cpu_model(), "cpu_count": os.cpu_count(),
                           "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                           "numpy": np.__version__}
    try:
        import jax

        out.update(jax=jax.__version__, jax_backend=jax.default_backend(),
                   jax_devices=[d.device_kind for d in jax.devices()])
        import flax
        import optax

        out.update(flax=flax.__version__, optax=optax.__version__)
    except Exception as e:  # reported, not fatal: the torch rows may still run
        out["jax_error"] = f"{type(e).__name__}: {e}"
    try:
        import torch

        out.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                   torch_cuda_available=torch.cuda.is_available(),
                   torch_device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                   torch_parallel_info=torch.__config__.parallel_info())
        import torchvision

        out["torchvision"] = torchvision.__version__
    except Exception as e:
        out["torch_error"] = f"{type(e).__name__}: {e}"
    return out


# -- PyTorch -------------------------------------------------------------------------------------
def torch_setup(spec: dict, precision: str) -> dict[str, Any]:
    """Threads and float32 matmul precision, set explicitly, then read back for the record.
    ``float32`` is IEEE float32 (no TF32), ``tf32`` allows TF32 on CUDA; bf16 rows cast their
    tensors themselves. Newer torch has ``fp32_precision`` and refuses a mix with the old API."""
    import torch

    torch.set_num_threads(spec["threads"])
    try:
        torch.set_num_interop_threads(spec["interop_threads"])
    except RuntimeError:  # settable once per process (profile_torch.py builds several loops)
        if torch.get_num_interop_threads() != spec["interop_threads"]:
            raise
    mode = "tf32" if precision == "tf32" else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.fp32_precision = mode
        torch.backends.mkldnn.matmul.fp32_precision = "ieee"  # CPU rows: always IEEE float32
    else:
        torch.set_float32_matmul_precision("high" if mode == "tf32" else "highest")
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
    return {"torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads()}


def torch_precision_record() -> dict[str, Any]:
    import torch

    rec: dict[str, Any] = {}
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        rec.update(torch_cuda_matmul_fp32_precision=torch.backends.cuda.matmul.fp32_precision,
                   torch_cpu_matmul_fp32_precision=torch.backends.mkldnn.matmul.fp32_precision)
    for key, read in (("torch_float32_matmul_precision", torch.get_float32_matmul_precision),
                      ("torch_cuda_matmul_allow_tf32", lambda: bool(torch.backends.cuda.matmul.allow_tf32))):
        try:
            rec[key] = read()
        except RuntimeError as e:  # the legacy getters may refuse once the new API was used
            rec[key] = f"unreadable ({str(e)[:80]})"
    return rec


def adam_kwargs(adam: str, device: str) -> dict[str, bool]:
    if adam == "default":
        return {}
    return {"fused": True} if device == "gpu" else {"foreach": True}


def optimizer_options(model: str, impl: Impl, device: str) -> dict[str, bool]:
    """The fast rows' optimiser options: Adam's (``adam_kwargs``); torch's RMSprop (WGAN) has no
    fused kernel, so its fast variant is foreach on every device."""
    if model == "wgan":
        return {"foreach": True} if impl.adam == "fast" else {}
    return adam_kwargs(impl.adam, device)


def torch_models(spec: dict, impl: Impl, dev):
    """G, D, their optimisers and one training iteration of the chosen reference (``spec["model"]``):
    returns (G, D, n_params, per_iter, iteration) where ``iteration(next_batch)`` runs one
    iteration of the reference's loop and consumes ``per_iter`` batches (WGAN: n_critic)."""
    import torch

    from benchmarks import torch_dcgan as td

    model = spec.get("model", "mlp")
    options = optimizer_options(model, impl, spec["device"])
    torch.manual_seed(0)
    if model == "mlp":
        from benchmarks import torch_reference as ref

        G, D = ref.Generator((1, 28, 28), 100).to(dev), ref.Discriminator((1, 28, 28)).to(dev)
    else:
        gh, dh = tuple(spec.get("g_hidden") or td.G_HIDDEN), tuple(spec.get("d_hidden") or td.D_HIDDEN)
        G = td.Generator(1, 32, 100, gh)
        D = td.Discriminator(1, 32, dh, sigmoid=model == "dcgan")
        if model == "dcgan":  # dcgan/train.py's init_weight; wgan/train.py applies none
            G.apply(td.init_weight), D.apply(td.init_weight)
        G, D = G.to(dev), D.to(dev)
        if impl.channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    # The MLP's and DCGAN's Adam(2e-4, betas (0.5, 0.999)) are the same; WGAN's RMSprop(5e-5).
    optimizers = td.wgan_optimizers if model == "wgan" else td.dcgan_optimizers
    opt_g, opt_d = optimizers(G, D, **options)
    n_params = sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
    if impl.compile:
        G, D = torch.compile(G, mode=impl.compile), torch.compile(D, mode=impl.compile)

    def noise(m: int):  # as the reference scripts: torch.rand(m, latent_dim), m = this batch's size
        return torch.rand(m, 100, device=dev)

    if model == "mlp":
        def iteration(next_batch):
            ref.train_iteration(G, D, opt_g, opt_d, next_batch(), 100)
        return G, D, n_params, 1, iteration
    if model == "dcgan":
        def iteration(next_batch):
            images = next_batch()  # the DataLoader row keeps the short last batch, as dcgan/train.py
            m = images.size(0)
            td.dcgan_iteration(G, D, opt_g, opt_d, images, noise(m), noise(m))
        return G, D, n_params, 1, iteration

    def iteration(next_batch):
        batches = [next_batch() for _ in range(N_CRITIC)]  # full batches only, as wgan/train.py
        m = batches[0].size(0)
        td.wgan_iteration(G, D, opt_g, opt_d, batches, [noise(m) for _ in range(N_CRITIC)], noise(m), N_CRITIC, 0.01)
    return G, D, n_params, N_CRITIC, iteration


def torch_loop(spec: dict, impl: Impl) -> tuple[Callable[[int], None], Callable[[], None], dict[str, Any]]:
    """The PyTorch training loop of one row kind: ``run_block(k)`` runs k iterations, ``sync``
    waits for the device. Used by the throughput rows and by ``profile_torch.py``."""
    import torch

    threads = torch_setup(spec, impl.precision)
    from torchvision import datasets, transforms

    from benchmarks import torch_reference as ref

    device, batch_size, model = spec["device"], spec["batch_size"], spec.get("model", "mlp")
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    if device == "gpu" and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    G, D, n_params, per_iter, iteration = torch_models(spec, impl, dev)
    # CUDA graphs: tell the compiled graphs where an iteration starts, so outputs of the previous
    # iteration may be overwritten.
    mark_step = (torch.compiler.cudagraph_mark_step_begin if impl.compile == "reduce-overhead"
                 else (lambda: None))
    layout = torch.channels_last if impl.channels_last else torch.contiguous_format

    if impl.pipeline == "loader":
        transform = ref.reference_transform(1)
        if model != "mlp":  # dcgan/ and wgan/train.py: Resize(32) first, per image, in the workers
            transform = transforms.Compose([transforms.Resize(32), transform])
        ds = datasets.MNIST(root=spec["data_dir"], train=True, download=False, transform=transform)
        loader = ref.reference_loader(ds, batch_size, num_workers=spec["workers"], pin_memory=device == "gpu")
        if model == "wgan":
            from benchmarks import torch_dcgan as td

            stream = td.full_batches_forever(loader)  # wgan/train.py's generate(): full batches only
        else:
            stream = (images for images, _ in ref.cycle(loader))

        def next_batch():
            return next(stream).to(dev, non_blocking=True).contiguous(memory_format=layout)
    else:
        if model == "mlp":
            data = datasets.MNIST(root=spec["data_dir"], train=True, download=False).data.to(dev)
        else:  # the 32x32 uint8 images the parent resized once (torchvision's Resize(32))
            data = torch.from_numpy(np.load(os.path.join(spec["data_dir"], "images_32.npy"))[..., 0])
            data = data[:, None].to(dev)
        n = data.shape[0]
        pos = {"perm": torch.randperm(n, device=dev), "i": 0}

        def next_batch():
            if pos["i"] + batch_size > n:  # a new epoch (the short tail is skipped here)
                pos["perm"], pos["i"] = torch.randperm(n, device=dev), 0
            idx = pos["perm"][pos["i"]:pos["i"] + batch_size]
            pos["i"] += batch_size
            return ((data[idx].float() / 255.0 - 0.5) / 0.5).contiguous(memory_format=layout)

    def run_block(k: int) -> None:
        for _ in range(k):
            mark_step()
            iteration(next_batch)

    kw = optimizer_options(model, impl, device)
    opt = "RMSprop" if model == "wgan" else "Adam"
    info = {**threads, **torch_precision_record(), "compile_mode": impl.compile, "n_params": int(n_params),
            "batches_per_iter": per_iter, "channels_last": impl.channels_last,
            "adam": f"torch.optim.{opt} defaults" if impl.adam == "default" else f"torch.optim.{opt}({kw})",
            "device_name": torch.cuda.get_device_name(0) if device == "gpu" else cpu_model()}
    return run_block, sync, info


def row_torch(spec: dict, impl: Impl) -> dict[str, Any]:
    run_block, sync, info = torch_loop(spec, impl)
    t0 = time.perf_counter()
    run_block(3)  # warm-up: workers, allocator, cuBLAS handles, compilation, graph capture
    sync()
    compile_s = time.perf_counter() - t0
    timing = timed_rounds(run_block, sync, spec["min_time"], spec.get("rounds", 1))
    # One "iter" is one batch trained on (a WGAN iteration trains on n_critic), as jaxgan counts steps.
    return {**timing, "iters": timing["calls"] * info["batches_per_iter"], "compile_s": compile_s, **info}


# -- jaxgan ----------------------------------------------------------------------------------------
def jax_setup(spec: dict) -> None:
    import jax

    if spec["device"] == "cpu":
        jax.config.update("jax_platforms", "cpu")
    # Each row compiles from scratch: no persistent cache shared between processes.
    jax.config.update("jax_enable_compilation_cache", False)


def jax_precision_record(matmul_dtype: str) -> dict[str, Any]:
    import jax

    rec: dict[str, Any] = {"jax_matmul_dtype": matmul_dtype,
                           "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision)}
    try:
        from jaxgan.layers import precision

        rec["jax_dot_precision"] = str(precision(matmul_dtype))
    except ImportError:
        rec["jax_dot_precision"] = "unknown (jaxgan.layers.precision missing)"
    return rec


def jax_config(batch_size: int, matmul_dtype: str, data_dir: str = "unused", spec: dict | None = None,
               impl: Impl | None = None, steps_per_call: int = 200):
    """jaxgan's config for a row: the model's reference defaults (``config.from_dict``), the widths,
    conv implementation and population size the spec and row kind ask for."""
    from jaxgan.config import from_dict

    spec = spec or {}
    values: dict[str, Any] = {"model": spec.get("model", "mlp"), "dataset": "mnist", "data_dir": data_dir,
                              "download": False, "batch_size": batch_size, "matmul_dtype": matmul_dtype,
                              "progress": False, "steps_per_call": steps_per_call}
    for k in ("g_hidden", "d_hidden"):
        if spec.get(k):
            values[k] = tuple(spec[k])
    if impl is not None:
        values["conv_impl"] = impl.conv_impl
        if impl.conv_impl == "other":  # the form auto does not pick on this backend
            from jaxgan.convnets import resolve_conv_impl

            values["conv_impl"] = {"lax": "matmul", "matmul": "lax"}[resolve_conv_impl("auto")]
        if impl.population:
            values["population"] = spec["members"]
    return from_dict(values)


def row_jax(spec: dict, impl: Impl) -> dict[str, Any]:
    jax_setup(spec)
    import jax

    from jaxgan import data as data_lib
    from jaxgan import convnets, parallel, program

    if (jax.default_backend() == "gpu") != (spec["device"] == "gpu"):
        raise RuntimeError(f"JAX's backend is {jax.default_backend()}, asked for {spec['device']}")
    batch_size = spec["batch_size"]
    # The parent saved the same images as .npy: this process never imports torch.
    name = "images.npy" if spec.get("model", "mlp") == "mlp" else "images_32.npy"
    images = np.load(os.path.join(spec["data_dir"], name))
    n = len(images)
    full = n // batch_size
    length = max(1, min(spec["steps_per_call"], full)) if impl.steps_per_call else 1
    cfg = jax_config(batch_size, impl.precision, spec["data_dir"], spec, impl, steps_per_call=length)
    members = cfg.population if impl.population else 1
    # The program python -m jaxgan.train runs: the same factory, shardings, donation and data layout.
    mesh = parallel.data_mesh()
    prog = program.compile_run(cfg, mesh)
    state = parallel.put(prog.initial_state, prog.state_sharding)
    # One run's parameters (a population's state holds every member's).
    n_params = sum(x.size for x in jax.tree_util.tree_leaves((state.g_params, state.d_params))) // members
    data = data_lib.put_dataset(images, mesh)

    def scalar(v: int):
        return parallel.put(np.int32(v), prog.replicated)

    step_count = scalar(length)
    pos = {"epoch": 0, "i": 0, "perm": prog.permutations(scalar(0), n)}
    box = {"state": state}  # donated to each call

    def call() -> None:
        if pos["i"] + length > full:
            pos["epoch"] += 1
            pos["i"], pos["perm"] = 0, prog.permutations(scalar(pos["epoch"]), n)
        box["state"], _ = prog.chunk(box["state"], data, pos["perm"], scalar(pos["i"]), step_count)
        pos["i"] += length

    def run_block(k: int) -> None:
        for _ in range(k):
            call()

    def sync() -> None:
        jax.block_until_ready(box["state"])

    t0 = time.perf_counter()
    call()
    sync()
    compile_s = time.perf_counter() - t0
    timing = timed_rounds(run_block, sync, spec["min_time"], spec.get("rounds", 1))
    return {**timing, "iters": timing["calls"] * length, "steps_per_call": length, "compile_s": compile_s,
            **jax_precision_record(impl.precision), "n_params": int(n_params), "members": members,
            "conv_impl": convnets.resolve_conv_impl(cfg.conv_impl) if cfg.family.reads("conv_impl") else None,
            "device_name": jax.devices()[0].device_kind if spec["device"] == "gpu" else cpu_model()}


def job_row(spec: dict) -> dict[str, Any]:
    impl = IMPLS[spec["impl"]]
    r = row_torch(spec, impl) if impl.framework == "torch" else row_jax(spec, impl)
    # A population row counts every member's images: its aggregate throughput.
    per_call = r["iters"] / r["calls"]
    images = spec["batch_size"] * r.get("members", 1)
    # Each round's rate; the row's rate is their median (one round: the rate over all it timed).
    r["img_per_s_rounds"] = [c["calls"] * per_call * images / c["seconds"] for c in r["rounds"]]
    r["img_per_s"] = float(np.median(r["img_per_s_rounds"]))
    r["step_ms"] = 1e3 * images / r["img_per_s"]
    r["precision"] = impl.precision
    return r


# -- matmul peak, memory bandwidth -----------------------------------------------------------------
def job_peak(spec: dict) -> dict[str, Any]:
    """A large square matmul's FLOP rate, the best of several runs, at one precision."""
    device, precision, framework = spec["device"], spec["precision"], spec["framework"]
    n = spec.get("n") or (8192 if device == "gpu" else 2048)
    reps = 10 if device == "gpu" else 7
    if framework == "jax":
        jax_setup(spec)
        import jax
        import jax.numpy as jnp

        dtype = jnp.bfloat16 if precision == "bfloat16" else jnp.float32
        prec = jax.lax.Precision.HIGHEST if precision == "float32" else jax.lax.Precision.DEFAULT
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
        b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
        f = jax.jit(lambda x, y: jnp.matmul(x, y, precision=prec, preferred_element_type=jnp.float32))
        f(a, b).block_until_ready()

        def once() -> None:
            f(a, b).block_until_ready()
        how = f"jnp.matmul {n}x{n}x{n} {jnp.dtype(dtype).name} operands, precision {prec}, fp32 result"
        extra = jax_precision_record({"bfloat16": "bfloat16", "tf32": "tf32"}.get(precision, "float32"))
    else:
        threads = torch_setup(spec, precision)
        import torch

        dev = torch.device("cuda" if device == "gpu" else "cpu")
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        a = torch.randn(n, n, device=dev).to(dtype)
        b = torch.randn(n, n, device=dev).to(dtype)
        sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
        torch.matmul(a, b)
        sync()

        def once() -> None:
            torch.matmul(a, b)
            sync()
        how = f"torch.matmul {n}x{n}x{n} {dtype} operands"
        extra = {**threads, **torch_precision_record()}
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    # The best of several runs: a peak is what the machine can do, and other jobs only slow it.
    return {"flops_per_s": 2 * n ** 3 / min(times), "how": how + f", best of {reps}",
            "times": times, **extra}


def job_bandwidth(spec: dict) -> dict[str, Any]:
    """STREAM-style triad a = b + s*c over arrays far larger than the caches: 3 arrays' bytes per
    pass (the write-allocate read is not counted, as in STREAM). The best of several passes."""
    n = spec.get("n") or (1 << 25)  # 128 MiB per float32 array, 4x this machine's L3
    framework, reps = spec["framework"], 7
    if framework == "numpy":
        b = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        c, a = b.copy(), np.empty_like(b)

        def once() -> None:  # two passes in numpy (no fused triad): 5 arrays' bytes per call
            np.multiply(c, np.float32(1.5), out=a)
            np.add(a, b, out=a)
        arrays, extra = 5, {"threads": 1}
    elif framework == "torch":
        threads = torch_setup(spec, "float32")
        import torch

        b = torch.randn(n)
        c, a = b.clone(), torch.empty_like(b)

        def once() -> None:
            torch.add(b, c, alpha=1.5, out=a)
        arrays, extra = 3, threads
    else:
        jax_setup(spec)
        import jax
        import jax.numpy as jnp

        b = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
        c = b + 1
        f = jax.jit(lambda x, y: x + 1.5 * y)
        f(b, c).block_until_ready()

        def once() -> None:
            f(b, c).block_until_ready()
        arrays, extra = 3, {"xla_flags": os.environ.get("XLA_FLAGS")}
    once()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return {"bytes_per_s": arrays * 4 * n / min(times), "bytes_per_call": arrays * 4 * n,
            "how": f"{framework} triad over {n:,} float32 ({arrays} array passes per call), best of {reps}",
            "times": times, **extra}


# -- FLOPs -----------------------------------------------------------------------------------------
def _cost(lowered) -> dict[str, float]:
    cost = lowered.cost_analysis()
    if not cost:  # some JAX releases only analyse compiled programs
        cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return dict(cost or {})


def job_flops(spec: dict) -> dict[str, Any]:
    """FLOPs and bytes of one jaxgan training step (D update then G update) at this batch size,
    from XLA's cost analysis of the step lowered for the CPU. On a GPU the device's own analysis is
    recorded beside it: XLA:GPU hands matmuls to cuBLAS as custom calls, which it does not count.
    Convolutional models are counted with ``--conv_impl lax`` (XLA counts a convolution's products
    with real inputs, not padding: the multiply-adds PyTorch does too); the matmul form computes
    more (zeros included). WGAN: a critic step plus 1/n_critic of a G step, per batch."""
    jax_setup(spec)
    import dataclasses

    import jax

    from jaxgan import steps

    batch_size = spec["batch_size"]
    cfg = dataclasses.replace(jax_config(batch_size, "float32", spec=spec), conv_impl="lax")
    gan, state = steps.build(cfg, abstract=True)
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    n_features = int(np.prod(cfg.image_shape))
    real = jax.ShapeDtypeStruct((batch_size, n_features), np.float32)
    n_g = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state.g_params))
    n_d = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state.d_params))
    key = jax.random.key(0)

    def lowered(fn, *args):
        return jax.jit(fn).trace(*args).lower(lowering_platforms=("cpu",))

    if cfg.model == "wgan":
        z = jax.ShapeDtypeStruct((batch_size, cfg.latent_dim), np.float32)
        critic = _cost(lowered(lambda s, x, z: gan.d_update(s, x, z, key), abstract, real, z))
        g_step = _cost(lowered(lambda s, z: gan.g_update(s, z, key), abstract, z))
        cpu = {k: critic.get(k, float("nan")) + g_step.get(k, float("nan")) / cfg.d_steps
               for k in ("flops", "bytes accessed")}
        source = (f"XLA cost analysis of jaxgan's critic step + 1/{cfg.d_steps} of its G step (--conv_impl lax), "
                  "lowered for the CPU")
        # RMSprop per parameter and update: read param, grad, square average; write param, average.
        opt_bytes = 5 * 4 * (n_d + n_g / cfg.d_steps)
    else:
        cpu = _cost(lowered(gan.train_step, abstract, real))
        source = ("XLA cost analysis of jaxgan's train_step (D update + G update"
                  + (", --conv_impl lax" if cfg.model != "mlp" else "") + ") lowered for the CPU")
        # Adam per parameter per step: read param, grad, m, v; write param, m, v (float32).
        opt_bytes = 7 * 4 * (n_g + n_d)
    out: dict[str, Any] = {
        "batch_size": batch_size, "model": cfg.model, "flops_per_step": float(cpu.get("flops", float("nan"))),
        "bytes_accessed_per_step": float(cpu.get("bytes accessed", float("nan"))),
        "flops_source": source, "n_params": n_g + n_d, "adam_bytes_per_step": float(opt_bytes),
    }
    out["flops_per_img"] = out["flops_per_step"] / batch_size
    if spec["device"] == "gpu":
        try:
            dev = _cost(jax.jit(gan.train_step).lower(abstract, real))
            out["device_cost_analysis_flops"] = float(dev.get("flops", float("nan")))
            out["device_cost_analysis_note"] = ("XLA:GPU's own count; matmuls run as cuBLAS custom calls it "
                                                "does not count, so the CPU lowering's count is used")
        except Exception as e:
            out["device_cost_analysis_error"] = f"{type(e).__name__}: {e}"
    return out


JOBS = {"env": job_env, "row": job_row, "peak": job_peak, "bandwidth": job_bandwidth, "flops": job_flops}


def main() -> int:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    # XLA documents no binding thread setting (XLA_FLAGS' intra_op_parallelism_threads is a hint),
    # so fewer threads than CPUs are also enforced by CPU affinity, before any framework starts.
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if spec.get("threads") and spec.get("device") == "cpu" and 0 < spec["threads"] < len(cpus):
        os.sched_setaffinity(0, cpus[:spec["threads"]])
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    result: dict[str, Any] = {"spec": spec, "pid": os.getpid(), "loadavg_before": load_before,
                              "cpu_affinity": sorted(os.sched_getaffinity(0)) if cpus else None}
    try:
        result.update(JOBS[spec["job"]](spec))
        result["ok"] = True
    except Exception as e:  # a failing measurement is reported in its row, not fatal to the run
        import traceback

        result.update(ok=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                      traceback=traceback.format_exc()[-3000:])
    result.update(wall_s=time.perf_counter() - t0, loadavg_after=os.getloadavg(),
                  os_threads_at_end=os_threads(), env=env_settings())
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(tmp, out_path)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
