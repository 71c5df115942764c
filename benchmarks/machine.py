"""What the machine can do, measured in a fresh child process: library versions and devices, the
matmul peak per precision in each framework, the memory bandwidth (a triad), and XLA's FLOPs and
bytes for one training step at one batch size."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import numpy as np

from benchmarks.frameworks import jax_precision_record, jax_setup, torch_precision_record, torch_setup
from benchmarks.harness import cpu_model
from benchmarks.rows import jax_config


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
