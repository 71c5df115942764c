"""The rows a throughput table compares: the implementation registry (``IMPLS``), the PyTorch
loops (the reference's, and the tuned variants built from ``benchmarks/torch_reference.py`` and
``torch_dcgan.py``), and jaxgan's rows, built by the trainer's own compiled run
(``jaxgan.program.compile_run``). Each row runs in a child process (``benchmarks.bench_row``);
torch and jax are imported inside the functions that use them."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from benchmarks.frameworks import jax_precision_record, jax_setup, torch_precision_record, torch_setup
from benchmarks.harness import cpu_model, tell_parent, timed_rounds


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

def preload(spec: dict, impl: Impl) -> None:
    """Import what the row runs (its framework, and for JAX the trainer's modules and backend), the
    part of a row's start-up that needs no quiet machine: rows taking turns do this side by side,
    then compile one at a time (``harness.run_in_turns``)."""
    if impl.framework == "torch":
        import torch  # noqa: F401
        import torchvision  # noqa: F401

        from benchmarks import torch_dcgan, torch_reference  # noqa: F401
    else:
        jax_setup(spec)
        import jax

        from jaxgan import program  # noqa: F401

        jax.devices()

def job_row(spec: dict) -> dict[str, Any]:
    impl = IMPLS[spec["impl"]]
    preload(spec, impl)
    loaded = time.time()
    tell_parent("loaded", wait=True)  # taking turns: build and compile when the parent says, alone
    alone = time.time()
    r = row_torch(spec, impl) if impl.framework == "torch" else row_jax(spec, impl)
    r["loaded"], r["alone_began"] = loaded, alone  # wall clock, comparable across the rows' processes
    # A population row counts every member's images: its aggregate throughput.
    per_call = r["iters"] / r["calls"]
    images = spec["batch_size"] * r.get("members", 1)
    # Each round's rate; the row's rate is their median (one round: the rate over all it timed).
    r["img_per_s_rounds"] = [c["calls"] * per_call * images / c["seconds"] for c in r["rounds"]]
    r["img_per_s"] = float(np.median(r["img_per_s_rounds"]))
    r["step_ms"] = 1e3 * images / r["img_per_s"]
    r["precision"] = impl.precision
    return r
