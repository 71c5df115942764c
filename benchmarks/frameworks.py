"""Each framework set up for a measurement in a fresh child process, and what it reports of that
set-up: threads, matmul precision, the compilation cache. Used by the rows and the machine jobs."""

from __future__ import annotations

from typing import Any

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
