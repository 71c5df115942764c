"""Markdown from the benchmark JSON: every number printed here is read from a results file.

A library, not a command: ``python -m scripts.render_docs`` renders the docs' blocks through
``render_block``; ``benchmarks.throughput`` calls ``annotate`` and ``render_throughput``;
``benchmarks.select_run`` applies ``quietest``, the rule for repeated runs on a shared machine
(keep the run whose mean 1-minute load average, before and after each of its measurements, is
lowest; nothing is picked by hand).
"""

from __future__ import annotations

import json
import math
import re
import os
import subprocess
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
# The pair each headline compares at one precision: jaxgan's training path at that precision.
JAX_PATH = {"float32": "jax_scan", "tf32": "jax_scan_tf32"}
# The DCGAN/WGAN runs the README shows, in table order (benchmarks/results/).
CONV_RESULTS = ("cpu_dcgan_reference.json", "cpu_dcgan_reduced.json", "cpu_wgan_reference.json",
                "cpu_wgan_reduced.json")


# -- derived quantities ------------------------------------------------------------------------------
def _ok(items: list[dict]) -> list[dict]:
    return [r for r in items if r.get("ok")]


def _job_load(r: dict) -> float:
    return (r["loadavg_before"][0] + r["loadavg_after"][0]) / 2


def all_jobs(doc: dict) -> list[dict]:
    return [doc["host"], *doc.get("peaks", []), *doc.get("bandwidth", []), *doc.get("flops", {}).values(),
            *doc.get("rows", [])]


def annotate(doc: dict) -> dict:
    """Add to ``doc`` what follows from its measurements: the peak per precision (the faster
    framework's), the bandwidth, each row's FLOPs (its own batch size's), % of peak at its own
    precision, roofline time and fraction (CPU), the load summary and the table of truths."""
    peaks: dict[str, dict] = {}
    for p in _ok(doc.get("peaks", [])):
        pr, fw = p["spec"]["precision"], p["spec"]["framework"]
        e = peaks.setdefault(pr, {"by_framework": {}})
        e["by_framework"][fw] = p["flops_per_s"]
    for e in peaks.values():
        e["framework"], e["flops_per_s"] = max(e["by_framework"].items(), key=lambda kv: kv[1])
    doc["peak_by_precision"] = peaks
    bws = {b["spec"]["framework"]: b["bytes_per_s"] for b in _ok(doc.get("bandwidth", []))}
    doc["bandwidth_best"] = ({"framework": max(bws, key=bws.get), "bytes_per_s": max(bws.values()),
                              "by_framework": bws} if bws else None)
    for r in doc.get("rows", []):
        fl = doc.get("flops", {}).get(str(r["batch_size"]), {})
        if not (r.get("ok") and fl.get("ok")):
            continue
        k = r.get("members", 1)  # a population step is K members' steps
        r.update(flops_per_step=k * fl["flops_per_step"], flops_per_img=fl["flops_per_img"],
                 flops_source=fl["flops_source"], adam_bytes_per_step=k * fl["adam_bytes_per_step"])
        for k in ("device_cost_analysis_flops", "device_cost_analysis_note"):
            if k in fl:
                r[k] = fl[k]
        r["achieved_flops_per_s"] = fl["flops_per_img"] * r["img_per_s"]
        peak = peaks.get(r["precision"])
        if peak:
            r["matmul_peak_flops_per_s"] = peak["flops_per_s"]
            r["peak_fraction"] = r["achieved_flops_per_s"] / peak["flops_per_s"]
            if doc["bandwidth_best"]:
                roof_s = r["flops_per_step"] / peak["flops_per_s"] + \
                    r["adam_bytes_per_step"] / doc["bandwidth_best"]["bytes_per_s"]
                r["roofline_step_ms"] = 1e3 * roof_s
                r["roofline_fraction"] = r["roofline_step_ms"] / r["step_ms"]
    loads = [_job_load(j) for j in all_jobs(doc) if "loadavg_before" in j and "loadavg_after" in j]
    doc["load"] = {"mean_1min": sum(loads) / len(loads), "max_1min": max(loads), "jobs": len(loads),
                   "rule": "mean over every measurement of its 1-minute load average before and after"}
    doc["summary"] = summarize(doc)
    doc["population_summary"] = summarize_population(doc)
    return doc


def summarize_population(doc: dict) -> list[dict]:
    """Per batch size and population size K: the population row's aggregate img/s (all members)
    divided by jaxgan's one run (row e, jax_scan) at the same per-member batch, from the same run."""
    rows = _ok(doc.get("rows", []))
    out = []
    for bs in doc["settings"]["batch_sizes"]:
        one = next((r for r in rows if r["impl"] == "jax_scan" and r["batch_size"] == bs), None)
        for r in rows:
            if r["impl"] == "jax_population" and r["batch_size"] == bs and one:
                out.append({"batch_size": bs, "members": r["members"], "img_per_s": r["img_per_s"],
                            "one_run_img_per_s": one["img_per_s"], "vs_one_run": r["img_per_s"] / one["img_per_s"],
                            "peak_fraction": r.get("peak_fraction"), "one_run_peak_fraction": one.get("peak_fraction"),
                            "precision": r["precision"], "step_ms": r["step_ms"]})
    return out


def summarize(doc: dict) -> list[dict]:
    """The table of truths. Rule: per batch size and precision, the fastest PyTorch row is the
    torch row with the highest img/s among those that ran at that precision; it is compared with
    jaxgan's training path at the same precision. The reference as written stays beside it."""
    out = []
    rows = _ok(doc.get("rows", []))
    for bs in doc["settings"]["batch_sizes"]:
        at = [r for r in rows if r["batch_size"] == bs]
        ref = next((r for r in at if r["impl"] == "torch_reference"), None)
        torch_any = max((r for r in at if r["framework"] == "torch"), key=lambda r: r["img_per_s"], default=None)
        for precision, jax_impl in JAX_PATH.items():
            jx = next((r for r in at if r["impl"] == jax_impl), None)
            cands = [r for r in at if r["framework"] == "torch" and r["precision"] == precision]
            if not jx or not cands:
                continue
            best = max(cands, key=lambda r: r["img_per_s"])
            e: dict[str, Any] = {
                "batch_size": bs, "precision": precision, "fastest_torch": best["impl"],
                "fastest_torch_label": best["label"], "fastest_torch_img_per_s": best["img_per_s"],
                "jax": jax_impl, "jax_img_per_s": jx["img_per_s"], "ratio": jx["img_per_s"] / best["img_per_s"],
                "reference_img_per_s": ref["img_per_s"] if ref else None,
                "ratio_vs_reference": jx["img_per_s"] / ref["img_per_s"] if ref else None,
                "fastest_torch_any_precision": torch_any["impl"] if torch_any else None,
                "torch_candidates": sorted(r["impl"] for r in cands)}
            a, b = jx.get("img_per_s_rounds"), best.get("img_per_s_rounds")
            if a and b and len(a) == len(b) > 1:  # round k of jaxgan against round k of that PyTorch row
                e["ratio_rounds"] = [x / y for x, y in zip(a, b)]
            for side, r in (("torch", best), ("jax", jx)):
                for k in ("peak_fraction", "roofline_fraction", "roofline_step_ms", "step_ms"):
                    if k in r:
                        e[f"{side}_{k}"] = r[k]
            out.append(e)
    return out


# -- formatting ----------------------------------------------------------------------------------------
def _rate(r: dict) -> str:
    """A row's img/s: the median of its rounds, and their range when it took several."""
    rounds = r.get("img_per_s_rounds") or []
    spread = f" ({min(rounds):,.0f}–{max(rounds):,.0f})" if len(rounds) > 1 else ""
    return f"{r['img_per_s']:,.0f}{spread}"


def _ratio(e: dict) -> str:
    """A headline ratio, bold, with the range of its per-round ratios when the run had rounds."""
    rounds = e.get("ratio_rounds") or []
    spread = f" ({min(rounds):.2f}–{max(rounds):.2f} per round)" if rounds else ""
    return f"**{e['ratio']:.2f}×**{spread}"


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _x(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _threads(r: dict) -> str:
    cpus = f", {len(r['cpu_affinity'])} CPUs" if r.get("cpu_affinity") else ""
    if r.get("framework") == "torch":
        return f"torch {r.get('torch_num_threads')}/{r.get('torch_num_interop_threads')}{cpus}"
    flags = (r.get("env") or {}).get("XLA_FLAGS") or ""
    n = next((w.split("=")[1] for w in flags.split() if w.startswith("intra_op_parallelism_threads=")), "?")
    return f"XLA {n}{cpus}"


def precision_detail(r: dict) -> str:
    if r.get("framework") == "torch":
        if "torch_cuda_matmul_fp32_precision" in r:
            return (f"{r['precision']} (torch fp32_precision: cuda.matmul={r['torch_cuda_matmul_fp32_precision']}, "
                    f"cpu={r.get('torch_cpu_matmul_fp32_precision')})")
        return (f"{r['precision']} (float32_matmul_precision={r.get('torch_float32_matmul_precision')}, "
                f"allow_tf32={r.get('torch_cuda_matmul_allow_tf32')})")
    return f"{r['precision']} (--matmul_dtype {r.get('jax_matmul_dtype')}, dot precision {r.get('jax_dot_precision')})"


def omp_policy(doc: dict) -> str:
    policy = doc["settings"].get("omp_wait_policy", "not set by the harness")
    own = [f"{v['label']} {k}: {v['omp_wait']}" for k, v in doc.get("impls", {}).items() if v.get("omp_wait")]
    return policy + (f" (except {', '.join(own)})" if own else "")


def versions(doc: dict) -> str:
    h = doc.get("host", {})
    keys = ("jax", "flax", "optax", "torch", "torchvision", "numpy", "python")
    return ", ".join(f"{k} {h[k]}" for k in keys if h.get(k))


def render_throughput(doc: dict) -> str:
    s = doc["settings"]
    peaks = doc.get("peak_by_precision", {})
    model = s.get("model", "mlp")
    widths = ""
    if model != "mlp":
        text, reduced = _widths(s, ",")
        label = "reduced" if reduced else "the reference's"
        widths = f" at channel widths {text} ({label})"
    what = {"mlp": "the MLP GAN (gan/train.py)", "dcgan": "DCGAN (dcgan/train.py)",
            "wgan": "WGAN (wgan/train.py; one step = one critic batch, a G step every 5th)"}[model]
    out = [f"### Throughput on {doc['device_name']} ({doc['created_utc']})", "",
           f"Model: {what}{widths}.", "",
           f"Command: `{doc['command']}` — every measurement in its own process. {versions(doc)}. "
           f"Threads: {s['threads']} for every framework (torch intra-op {s['threads']}, inter-op "
           f"{s['interop_threads']}; XLA intra_op_parallelism_threads {s['threads']}; OMP/MKL {s['threads']}; "
           f"OMP_WAIT_POLICY {omp_policy(doc)}). "
           f"1-minute load average over the run's measurements: mean {doc['load']['mean_1min']:.2f}, "
           f"max {doc['load']['max_1min']:.2f} (other jobs share this machine). "
           f"CUDA_LAUNCH_BLOCKING={doc['parent_env'].get('CUDA_LAUNCH_BLOCKING')}.", ""]
    out += load_warning(doc)
    peak_txt = "; ".join(f"{pr} {v['flops_per_s'] / 1e9:,.0f} GFLOP/s ("
                         + ", ".join(f"{fw} {x / 1e9:,.0f}" for fw, x in sorted(v["by_framework"].items())) + ")"
                         for pr, v in peaks.items())
    out.append(f"Matmul peak measured in this run, per precision (the faster framework's): {peak_txt}.")
    if doc.get("bandwidth_best"):
        bw = doc["bandwidth_best"]
        out.append(f"Memory bandwidth (triad): {bw['bytes_per_s'] / 1e9:,.1f} GB/s (" + ", ".join(
            f"{fw} {x / 1e9:,.1f}" for fw, x in sorted(bw["by_framework"].items())) + ").")
    fl = {int(k): v for k, v in doc.get("flops", {}).items() if v.get("ok")}
    if fl:
        out.append("FLOPs per training step (XLA cost analysis, lowered for the CPU), per batch size: " + ", ".join(
            f"{bs}: {v['flops_per_step'] / 1e9:.3f} GFLOP ({v['flops_per_img'] / 1e6:.2f} MFLOP/img)"
            for bs, v in sorted(fl.items())) + f"; parameters {next(iter(fl.values()))['n_params']:,}. "
            + (f"Adam moves {next(iter(fl.values()))['adam_bytes_per_step'] / 1e6:.1f} MB per step "
               "(param, grad, two moments read; param, two moments written; float32)." if model != "wgan" else
               f"RMSprop moves {next(iter(fl.values()))['adam_bytes_per_step'] / 1e6:.1f} MB per step "
               "(param, grad, average read; param, average written; float32; G's every 5th step).")
            + f" Source: {next(iter(fl.values()))['flops_source']}.")
        dev = [v for v in fl.values() if "device_cost_analysis_flops" in v]
        if dev:
            out.append("The accelerator's own cost analysis counted " + ", ".join(
                f"{v['device_cost_analysis_flops'] / 1e9:.3f} GFLOP at batch {v['batch_size']}" for v in dev)
                + f": {dev[0]['device_cost_analysis_note']}.")
    out += ["", "#### Table of truths", "",
            "Rule (in `report.summarize`): per batch size and precision, the fastest PyTorch row is the torch "
            "row with the most img/s at that precision; jaxgan's training path at the same precision "
            "is compared with it, and with the reference as written.", "",
            "| batch | precision | fastest PyTorch | its img/s | jaxgan | jaxgan img/s | ÷ fastest PyTorch "
            "| ÷ reference as written | % of peak (PyTorch / jaxgan) | roofline ms/step "
            "| of roofline (PyTorch / jaxgan) |",
            "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for e in doc.get("summary", []):
        out.append(f"| {e['batch_size']} | {e['precision']} | {e['fastest_torch_label']} {e['fastest_torch']} | "
                   f"{e['fastest_torch_img_per_s']:,.0f} | {e['jax']} | {e['jax_img_per_s']:,.0f} | "
                   f"{_ratio(e)} | {_x(e['ratio_vs_reference'])} | "
                   f"{_pct(e.get('torch_peak_fraction'))} / {_pct(e.get('jax_peak_fraction'))} | "
                   f"{_f(e.get('jax_roofline_step_ms'), '.2f')} | "
                   f"{_pct(e.get('torch_roofline_fraction'))} / {_pct(e.get('jax_roofline_fraction'))} |")
    if doc.get("population_summary"):
        out += ["", "#### Populations", "",
                "Rule (in `report.summarize_population`): per batch size (per member) and population size K, "
                "the population row's images/s of all members together divided by jaxgan's one run (row (e)) "
                "at the same per-member batch, measured in this run.", "",
                "| batch per member | K | aggregate img/s | one run img/s | × one run | % of peak (K runs / one run) |",
                "|---:|---:|---:|---:|---:|---:|"]
        for e in doc["population_summary"]:
            out.append(f"| {e['batch_size']} | {e['members']} | {e['img_per_s']:,.0f} | {e['one_run_img_per_s']:,.0f} "
                       f"| **{e['vs_one_run']:.2f}×** | {_pct(e.get('peak_fraction'))} / "
                       f"{_pct(e.get('one_run_peak_fraction'))} |")
    out += ["", "#### Every row", "",
            "| row | batch | precision | img/s (median of rounds; min–max) | ms/step | compile/warm-up s | MFLOP/step | % of peak at its precision "
            "| of roofline | threads (intra/inter-op, CPUs allowed) | OS threads | load before → after |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in doc.get("rows", []):
        name = f"{r['label']} {r['impl']}" + (f" K={r['members']}" if r.get("members", 1) > 1 else "")
        load = f"{r['loadavg_before'][0]:.2f} → {r['loadavg_after'][0]:.2f}"
        if not r.get("ok"):
            out.append(f"| {name} | {r['batch_size']} | | failed: {r.get('error')} | | | | | | | | {load} |")
            continue
        out.append(f"| {name} | {r['batch_size']} | {precision_detail(r)} | {_rate(r)} | "
                   f"{r['step_ms']:.3f} | {r['compile_s']:.2f} | {_f(r.get('flops_per_step', 0) / 1e6, ',.1f')} | "
                   f"{_pct(r.get('peak_fraction'))} | {_pct(r.get('roofline_fraction'))} | {_threads(r)} | "
                   f"{r.get('os_threads_at_end')} | {load} |")
    for sk in doc.get("skipped", []):
        out.append(f"| {sk['impl']} | {sk['batch_size']} | | skipped ({sk['why']}) | | | | | | | | |")
    out += ["", "Rows: " + "; ".join(f"{v['label']} `{k}`: {v['what']}" for k, v in doc.get("impls", {}).items())
            + f". jax_scan fuses {s['steps_per_call']} steps per call (at most an epoch's full batches). "
            + (f"Each row compiled once in its own process, then the rows at one batch size took turns, "
               f"{s['rounds']} rounds of at least {s['min_time']:g} s each (A B C A B C ...); a row's img/s is its "
               "rounds' median, and each ratio's range pairs round k with round k. " if s.get("rounds", 1) > 1
               else "")
            + "Times exclude warm-up and compilation (reported); the device is synchronised before the "
            "clock is read. Every implementation is credited with the same FLOPs (PyTorch's G step "
            "also computes D's weight gradients, which are not credited)."]
    return "\n".join(out)


def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for impl, spec in doc.get("impls", {}).items():
        for k in sorted({r.get("members", 1) for r in _ok(doc["rows"]) if r["impl"] == impl}):
            pts = sorted((r["batch_size"], r["img_per_s"]) for r in _ok(doc["rows"])
                         if r["impl"] == impl and r.get("members", 1) == k)
            ax.plot(*zip(*pts), marker="o", label=f"{spec['label']} {impl}" + (f" K={k}" if k > 1 else ""),
                    linestyle="-" if spec["framework"] == "jax" else "--")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("training images / s (D+G iterations)")
    ax.set_title(f"{doc['device_name']}, {doc['created_utc'][:10]}: each row in its own process", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# -- the old GPU table (schema 1: a bare list of rows) -----------------------------------------------
def git_added(path: str) -> tuple[str, str] | None:
    """The commit that first added ``path`` and its date (short hash, YYYY-MM-DD), from git."""
    try:
        out = subprocess.run(["git", "log", "--diff-filter=A", "--format=%h %ad", "--date=short", "--", path],
                             capture_output=True, text=True, cwd=HERE, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out[-2], out[-1]) if len(out) >= 2 else None


def render_legacy_gpu(rows: list[dict], path: str) -> str:
    """The H200 table of an earlier harness, headed by what it was: which commit and date made it and
    which precision each framework ran in. No ratio is printed: its two sides ran different precisions."""
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    sizes = sorted({r["batch_size"] for r in rows})
    get = {(r["impl"], r["batch_size"]): r for r in rows}
    made = git_added(path)
    rel = os.path.relpath(path, os.path.dirname(HERE))
    head = [f"**{rows[0]['device']}, commit {made[0]} ({made[1]})**" if made else f"**{rows[0]['device']}**",
            f"(`{rel}`): jaxgan in **TF32** (XLA's default matmul precision on the GPU) against PyTorch in "
            "**true float32** (allow_tf32 off, its default). Not comparable as a ratio, and not today's program: "
            "today jaxgan's GPU default is `--matmul_dtype float32` (true float32), a different and slower "
            "program that this table did not measure. The harness of that commit ran every implementation in one "
            "process (JAX and PyTorch side by side) and recorded no library versions, threads or command."]
    out = [" ".join(head), "", "| impl | " + " | ".join(str(b) for b in sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for impl in impls:
        cells = (_f(get.get((impl, b), {}).get("img_per_s"), ",.0f") for b in sizes)
        out.append(f"| {impl} | " + " | ".join(cells) + " |")
    ms = [get[(i, b)]["step_ms"] for i in ("torch_tuned", "torch_compile") for b in sizes if (i, b) in get]
    note = [f"images/s. The tuned and compiled PyTorch rows took {min(ms):.1f}–{max(ms):.1f} ms per iteration at "
            f"every batch size from {sizes[0]} to {sizes[-1]}, although an iteration at {sizes[-1]} holds "
            f"{sizes[-1] // sizes[0]} times the images of one at {sizes[0]}: that run does not show why."]
    peaks = {r.get("matmul_peak_flops") for r in rows}
    if len(peaks) == 1 and None not in peaks:
        note.append(f"Its \"float32\" matmul peak, measured through XLA at default precision, was "
                    f"{next(iter(peaks)) / 1e12:,.0f} TFLOP/s, a TF32 tensor-core rate.")
    flops = {r.get("flops_per_img") for r in rows}
    if len(flops) == 1:
        note.append(f"Its FLOPs were one typed-in value ({next(iter(flops)) / 1e6:.1f} MFLOP/img on every row), "
                    "not measured per batch size, so its \"% of peak\" column is not used here.")
    return "\n".join(out) + "\n\n" + " ".join(note)


# -- start-up ---------------------------------------------------------------------------------------------
def render_profile(doc: dict, top_ops_for: int | None = None, n_ops: int = 12) -> str:
    """The summary table, then the top operators of every profile (or of the first ``top_ops_for``)."""
    out = [f"### Where the PyTorch loop's time goes ({doc['device_name']}, {doc['created_utc']})", "",
           f"`{doc['command']}`; torch {doc['torch']}, {doc['threads']} threads; "
           f"CUDA_LAUNCH_BLOCKING={doc['env'].get('CUDA_LAUNCH_BLOCKING')}, "
           f"OMP_WAIT_POLICY={doc['env'].get('OMP_WAIT_POLICY')}; load average "
           f"{doc['loadavg_before'][0]:.2f} before, {doc['loadavg_after'][0]:.2f} after.", "",
           "| row | batch | ms/iter (unprofiled) | ms/iter (profiled) | operator self time ms | outside operators ms "
           "| aten op calls (nested) | launches | sync calls (ms) | host reads | kernels | kernel ms | GPU busy |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def f(x, fmt):
        return "—" if x is None else format(x, fmt)

    def busy(x):
        return "—" if x is None else f"{100 * x:.1f}%"

    for p in doc["profiles"]:
        if "error" in p:
            out.append(f"| {p['impl']} | {p['batch_size']} | failed: {p['error']} |" + " |" * 10)
            continue
        out.append(f"| {p['impl']} | {p['batch_size']} | {p['ms_per_iter_unprofiled']:.2f} | "
                   f"{p['ms_per_iter_profiled']:.2f} | {p['host_op_ms_per_iter']:.2f} | "
                   f"{p['outside_ops_ms_per_iter']:.2f} | {p['aten_ops_per_iter']:.0f} | "
                   f"{p['launches_per_iter']:.0f} | "
                   f"{p['sync_calls_per_iter']:.1f} ({p['sync_ms_per_iter']:.2f}) | {p['host_reads_per_iter']:.1f} | "
                   f"{f(p['kernels_per_iter'], '.0f')} | {f(p['device_kernel_ms_per_iter'], '.3f')} | "
                   f"{busy(p['device_busy_fraction'])} |")
    for p in [p for p in doc["profiles"] if "error" not in p][:top_ops_for]:
        out += ["", f"{p['impl']}, batch {p['batch_size']}: operators by host self time per iteration", "",
                "| operator | calls/iter | host ms/iter | device ms/iter |", "|---|---:|---:|---:|"]
        for o in p["top_ops"][:n_ops]:
            out.append(f"| `{o['name']}` | {o['calls_per_iter']:.1f} | {o['host_ms_per_iter']:.3f} | "
                       f"{f(o['device_ms_per_iter'], '.3f')} |")
    out += ["", "Operator self time is host (CPU) time inside profiled operators and CUDA runtime calls; "
            "\"outside operators\" is the rest of the iteration (Python, autograd and dispatch between "
            "operators, and the profiler's own cost). The profiled loop synchronises once per iteration, so one "
            "synchronising call per iteration is the profile's own."]
    return "\n".join(out)


def render_startup(doc: dict) -> str:
    out = [f"Whole processes, side by side in one run ({doc['created_utc']}, {doc['device_name']}): "
           f"`{doc['command']}`; {doc['images']:,} MNIST-format images, {doc['epochs']} epochs, batch "
           f"{doc['batch_size']}. 1-minute load average over the run: mean {doc['load']['mean_1min']:.2f}, "
           f"max {doc['load']['max_1min']:.2f}." + selection_note(doc), "",
           "| process | wall s (each round) | median s | PyTorch original ÷ this | PyTorch original "
           "(passive OpenMP) ÷ this |", "|---|---|---:|---:|---:|"]
    for name, e in doc["summary"].items():
        out.append(f"| {e['label']} | {', '.join(f'{t:.1f}' for t in e['wall_s'])} | {e['median_s']:.1f} | "
                   f"{_x(e.get('speedup_vs_torch'))} | {_x(e.get('speedup_vs_torch_passive'))} |")
    out += ["", "Commands (as run): " + "; ".join(f"{e['label']}: `{e['command']}`" for e in doc["summary"].values())]
    return "\n".join(out)


def selection_note(doc: dict) -> str:
    """Which of several runs this is, from the ``.selection.json`` that ``quietest --copy_to`` writes."""
    path = os.path.splitext(doc.get("_path", ""))[0] + ".selection.json"
    if not os.path.isfile(path):
        return ""
    with open(path) as f:
        sel = json.load(f)
    loads = ", ".join(f"{c['mean_load']:.2f}" for c in sel["candidates"])
    return (f" It is the quietest of {len(sel['candidates'])} runs by the rule in `benchmarks/report.py: quietest` "
            f"(lowest mean load average; the runs' means: {loads}).")


def cpu_truth_table(doc: dict) -> list[str]:
    out = ["| batch | fastest PyTorch (rule: most img/s among the torch rows) | jaxgan ÷ fastest PyTorch "
           "| jaxgan ÷ reference as written | precision (both) | % of float32 peak: PyTorch / jaxgan "
           "| roofline ms/step | of roofline: PyTorch / jaxgan |",
           "|---:|---|---:|---:|---|---:|---:|---:|"]
    for e in doc["summary"]:
        out.append(f"| {e['batch_size']} | {e['fastest_torch_label']} `{e['fastest_torch']}` | "
                   f"{_ratio(e)} | {_x(e['ratio_vs_reference'])} | {e['precision']} (true) | "
                   f"{_pct(e.get('torch_peak_fraction'))} / {_pct(e.get('jax_peak_fraction'))} | "
                   f"{_f(e.get('jax_roofline_step_ms'), '.2f')} | "
                   f"{_pct(e.get('torch_roofline_fraction'))} / {_pct(e.get('jax_roofline_fraction'))} |")
    return out


def load_warning(doc: dict) -> list[str]:
    """The warning a run gets when its mean load exceeded the threads each framework was given."""
    load, threads = doc["load"]["mean_1min"], doc["settings"]["threads"]
    if load <= threads:
        return []
    return [f"**Warning:** the mean load average ({load:.2f}) exceeded the {threads} thread{'s' if threads != 1 else ''} given to each "
            "framework: other jobs competed for the CPUs, and the frameworks need not suffer from that equally, "
            "so this run's ratios are not representative of a quiet machine.", ""]


def one_thread_section(doc: dict) -> list[str]:
    """The same comparison with one thread per framework (a second run, its own file)."""
    s = doc["settings"]
    f32 = doc["peak_by_precision"]["float32"]
    return ["", f"The same comparison with {s['threads']} thread for each framework (each process held to "
            f"{s['threads']} CPU; `{doc['command']}`, {doc['created_utc'][:10]}; float32 matmul peak "
            f"{f32['flops_per_s'] / 1e9:,.0f} GFLOP/s on that CPU; mean load average "
            f"{doc['load']['mean_1min']:.2f}, max {doc['load']['max_1min']:.2f}):", "", *load_warning(doc),
            *cpu_truth_table(doc)]


# -- the README section ---------------------------------------------------------------------------------
def render_readme(cpu: dict, startup: dict | None, profile: dict | None, gpu_legacy: str | None,
                  cpu_1thread: dict | None = None, gpu: dict | None = None, gpu_profile: dict | None = None) -> str:
    s = cpu["settings"]
    f32 = cpu["peak_by_precision"]["float32"]
    out = ["## Benchmarks", "",
           "`python -m benchmarks.throughput` times full D+G training iterations of jaxgan and of the PyTorch "
           "original, side by side in one run, each implementation and batch size in its own fresh process "
           "(no framework's threads, allocator or compilation cache touches another's; each torch.compile "
           "row gets an empty Inductor cache and JAX's persistent cache is off). Every framework gets the "
           "same explicit thread count, and each row records its library versions, threads, precision, "
           "the settings that change how the frameworks run (`CUDA_LAUNCH_BLOCKING`, `XLA_FLAGS`, …) and "
           "the load average before and after it. FLOPs come from XLA's cost analysis of one training step "
           "at each row's own batch size; the matmul peak is measured in the same run, per precision, in "
           "JAX and in PyTorch (the faster counts); on CPU the memory bandwidth too, for a roofline.", "",
           "```bash",
           "python -m benchmarks.throughput --quick --json out.json   # CPU, a few minutes; also out.md, out.png",
           "python -m benchmarks.startup --json startup.json          # whole processes: a short run, both sides",
           "python -m benchmarks.profile_torch --json profile.json     # where PyTorch's iteration time goes",
           "bash benchmarks/gpu_run.sh                                 # one GPU: all of the above, one command",
           "python -m scripts.render_docs                             # this section, from the JSON files",
           "```", "",
           "The rows: " + "; ".join(f"{v['label']} `{k}`: {v['what']}" for k, v in cpu["impls"].items()) + ". "
           "On a GPU also (h) `torch_cudagraphs` (`torch.compile(mode=\"reduce-overhead\")` with fused Adam), "
           "(i) `torch_fused_adam_tf32` and (j) `jax_scan_tf32`.", "",
           f"**CPU** — {cpu['device_name']}; `{cpu['command']}` ({cpu['created_utc'][:10]}, "
           f"`benchmarks/results/{os.path.basename(cpu.get('_path', 'cpu_quick.json'))}` and `.md`). "
           f"{versions(cpu)}; {s['threads']} threads for every framework; OMP_WAIT_POLICY {omp_policy(cpu)}. "
           "Matmul peak measured in that run: "
           f"{f32['flops_per_s'] / 1e9:,.0f} GFLOP/s float32 ({f32['framework']})"
           + (f", {cpu['peak_by_precision']['bfloat16']['flops_per_s'] / 1e9:,.0f} GFLOP/s bf16"
              if "bfloat16" in cpu["peak_by_precision"] else "")
           + (f"; memory bandwidth {cpu['bandwidth_best']['bytes_per_s'] / 1e9:,.1f} GB/s "
              f"({cpu['bandwidth_best']['framework']} triad)" if cpu.get("bandwidth_best") else "")
           + f"; mean load average {cpu['load']['mean_1min']:.2f} (max {cpu['load']['max_1min']:.2f}). "
           "CPU speeds are stated as ratios from that one run; the absolute figures are in the results file."
           + selection_note(cpu)
           + (f" **The mean load average exceeded the {s['threads']} threads: other jobs competed for the CPUs "
              "during that run, so its ratios are not those of a quiet machine.**"
              if cpu["load"]["mean_1min"] > s["threads"] else ""), "",
           *cpu_truth_table(cpu)]
    rows = _ok(cpu["rows"])
    by = {(r["impl"], r["batch_size"]): r for r in rows}
    plot_path = os.path.splitext(cpu.get("_path", ""))[0] + ".png"
    if os.path.isfile(plot_path):
        rel = os.path.relpath(plot_path, os.path.dirname(HERE))
        out += ["", f"![throughput on this CPU](../{rel})"]  # from docs/benchmarks.md
    out += ["", "Every row as a ratio to the reference as written at the same batch size, with its precision "
            "and its fraction of the roofline:", "",
            "| row | precision | " + " | ".join(f"batch {b}: ÷ (a)" for b in s["batch_sizes"])
            + " | " + " | ".join(f"batch {b}: of roofline" for b in s["batch_sizes"]) + " |",
            "|---|---|" + "---:|" * (2 * len(s["batch_sizes"]))]
    for impl, spec in cpu["impls"].items():
        cells, roofs, prec = [], [], ""
        for b in s["batch_sizes"]:
            r, ref = by.get((impl, b)), by.get(("torch_reference", b))
            cells.append(f"{r['img_per_s'] / ref['img_per_s']:.2f}×" if r and ref else "—")
            roofs.append(_pct(r.get("roofline_fraction")) if r else "—")
            prec = precision_detail(r) if r else prec
        out.append(f"| {spec['label']} `{impl}` | {prec} | " + " | ".join(cells) + " | " + " | ".join(roofs) + " |")
    fl = cpu["flops"][str(s["batch_sizes"][0])]
    out += ["", f"Roofline: the step's FLOPs (XLA cost analysis at that batch size, e.g. "
            f"{fl['flops_per_step'] / 1e9:.3f} GFLOP at batch {fl['batch_size']}) at the measured matmul peak, "
            f"plus Adam's {fl['adam_bytes_per_step'] / 1e6:.1f} MB per step ({fl['n_params']:,} parameters × 7 "
            "float32 reads and writes: parameter, gradient and two moments read, parameter and two moments "
            "written) at the measured bandwidth; \"of roofline\" is that time divided by the measured step "
            "time (100% would be the machine's limit for this step). The peak and bandwidth are the fastest "
            "seen in the run, so the roofline is a lower bound on the step's time."]
    if cpu_1thread:
        out += one_thread_section(cpu_1thread)
    if startup:
        out += ["", "**Start-up and short runs** — " + render_startup(startup)]
    if gpu:
        out += ["", f"**GPU** — {gpu['device_name']}, `bash benchmarks/gpu_run.sh` ({gpu['created_utc'][:10]}; "
                f"`{gpu['command']}`); {versions(gpu)}. Matmul peak measured in that run: " + "; ".join(
                    f"{pr} {v['flops_per_s'] / 1e12:,.0f} TFLOP/s ({v['framework']})"
                    for pr, v in gpu["peak_by_precision"].items()) + ". Absolute images/s; each pair at one "
                "precision (true float32: PyTorch's fp32_precision ieee against `--matmul_dtype float32`; TF32: "
                "PyTorch's tf32 against `--matmul_dtype tf32`):", "",
                "| batch | precision | fastest PyTorch | its img/s | jaxgan | jaxgan img/s | ÷ fastest PyTorch "
                "| ÷ reference as written | % of peak: PyTorch / jaxgan |",
                "|---:|---|---|---:|---|---:|---:|---:|---:|"]
        for e in gpu["summary"]:
            out.append(f"| {e['batch_size']} | {e['precision']} | {e['fastest_torch_label']} `{e['fastest_torch']}` "
                       f"| {e['fastest_torch_img_per_s']:,.0f} | `{e['jax']}` | {e['jax_img_per_s']:,.0f} | "
                       f"**{e['ratio']:.1f}×** | {_x(e['ratio_vs_reference'])} | "
                       f"{_pct(e.get('torch_peak_fraction'))} / {_pct(e.get('jax_peak_fraction'))} |")
        if gpu.get("skipped"):
            out += ["", "Rows not run within the script's time budget: " + ", ".join(
                f"{k['impl']} at {k['batch_size']}" for k in gpu["skipped"]) + "."]
        if gpu_profile:
            out += ["", render_profile(gpu_profile)]
        out += ["", "The GPU table before this change (one process for every row), kept as it was:"]
    else:
        out += ["", "**GPU** — not re-measured since the change to one process per row: no GPU was lent to "
                "the sessions since. The last GPU table, kept as it was and labelled for what it measured:"]
    if gpu_legacy:
        out += ["", gpu_legacy]
    if not gpu:
        out += ["", "What the old PyTorch GPU rows leave open: that run had JAX and PyTorch in one process and took "
                "no profile, so where PyTorch's time per iteration went is not known. `bash benchmarks/gpu_run.sh`, "
                "the one prepared command (its time budget is set in the script to fit a lent GPU's few minutes), "
                "will measure, when a GPU is lent: a `torch.profiler` profile of the tuned PyTorch loop at the "
                "smallest and largest batch (host time per operator, kernel launches, kernel time, synchronising "
                "calls beyond the one the profiled loop makes per iteration, how much of the iteration the GPU is "
                "busy), which decides whether that time is launch "
                "overhead, synchronisation, or something in the environment; every throughput row, each in its own "
                "process, including (g) fused Adam and (h) CUDA graphs; the TF32 pair ((i) against (j)) beside the "
                "true-float32 pair (the fastest of (a)-(h) against (e)); the matmul peak per precision (float32, "
                "TF32, bf16) in both frameworks; and the trainer itself on the same MNIST-format data."]
    if profile:
        out += ["", "Profile of the tuned PyTorch loop on this CPU (`python -m benchmarks.profile_torch`; on a GPU the "
                "same script adds kernel time and synchronising calls; the operators of every row in "
                f"`{os.path.relpath(os.path.splitext(profile['_path'])[0] + '.md', os.path.dirname(HERE))}`):",
                "", render_profile(profile, top_ops_for=1, n_ops=6)]
    return "\n".join(out)


def _widths(settings: dict, sep: str) -> tuple[str, bool]:
    """A conv run's channel widths as text, and whether they are reduced from the reference's."""
    from jaxgan.convnets import D_HIDDEN as DCGAN_D_HIDDEN
    from jaxgan.convnets import G_HIDDEN as DCGAN_G_HIDDEN

    g, d = settings.get("g_hidden"), settings.get("d_hidden")
    text = f"G {','.join(map(str, g or DCGAN_G_HIDDEN))}{sep} D {','.join(map(str, d or DCGAN_D_HIDDEN))}"
    return text, bool(g or d)


def _run_line(doc: dict) -> str:
    f32 = doc["peak_by_precision"].get("float32", {})
    return (f"`{doc['command']}` ({doc['created_utc'][:10]}, `benchmarks/results/"
            f"{os.path.basename(doc.get('_path', '?'))}` and `.md`; {doc['device_name']}; float32 matmul peak in "
            f"that run {f32.get('flops_per_s', float('nan')) / 1e9:,.0f} GFLOP/s; mean load average "
            f"{doc['load']['mean_1min']:.2f})")


def render_conv(docs: list[dict]) -> str:
    """DCGAN/WGAN rows from throughput JSONs made with --model dcgan|wgan: per run and batch size,
    jaxgan's path against the fastest PyTorch (report.summarize's rule) and what each alternative
    gives relative to its own baseline, all measured in that run."""
    out = ["| model | channel widths | batch | fastest PyTorch | jaxgan ÷ fastest PyTorch | jaxgan ÷ reference as "
           "written | other conv form (l) ÷ jaxgan (e) | bf16 (f) ÷ (e) | channels_last (k) ÷ (b) | % of float32 "
           "peak: PyTorch / jaxgan |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    runs = []
    for doc in docs:
        st = doc["settings"]
        text, reduced = _widths(st, ";")
        widths = f"{text} ({'reduced' if reduced else 'reference'})"
        by = {(r["impl"], r["batch_size"]): r for r in _ok(doc.get("rows", []))}

        def ratio(a: str, b: str, bs: int) -> str:
            x, y = by.get((a, bs)), by.get((b, bs))
            return f"{x['img_per_s'] / y['img_per_s']:.2f}×" if x and y else "—"
        for e in doc.get("summary", []):
            if e["precision"] != "float32":
                continue
            bs = e["batch_size"]
            out.append(f"| {st['model'].upper()} | {widths} | {bs} | {e['fastest_torch_label']} "
                       f"`{e['fastest_torch']}` | **{e['ratio']:.2f}×** | {_x(e['ratio_vs_reference'])} | "
                       f"{ratio('jax_scan_other_conv', 'jax_scan', bs)} | {ratio('jax_scan_bf16', 'jax_scan', bs)} | "
                       f"{ratio('torch_channels_last', 'torch_tuned', bs)} | {_pct(e.get('torch_peak_fraction'))} / "
                       f"{_pct(e.get('jax_peak_fraction'))} |")
        runs.append(f"{st['model'].upper()} {'reduced' if reduced else 'reference'} widths: " + _run_line(doc))
    return "\n".join(out + ["", "Runs: " + "; ".join(runs) + "."])


def render_population(doc: dict) -> str:
    """The population rows of one throughput JSON made with --population (report.summarize_population)."""
    out = ["| model | batch per member | K | aggregate img/s ÷ one run | % of float32 peak: K runs / one run |",
           "|---|---:|---:|---:|---:|"]
    model = doc["settings"].get("model", "mlp")
    for e in doc.get("population_summary", []):
        out.append(f"| {model.upper()} | {e['batch_size']} | {e['members']} | **{e['vs_one_run']:.2f}×** | "
                   f"{_pct(e.get('peak_fraction'))} / {_pct(e.get('one_run_peak_fraction'))} |")
    return "\n".join(out + ["", "Run: " + _run_line(doc) + "."])


def render_population_seeds(doc: dict) -> str:
    """The docs' 8-seed table: ``jaxgan.evaluate``'s own population table of its committed JSON."""
    from jaxgan.quality import population_table

    pop = doc["population"]
    return population_table(pop, f"{pop['members']} seeds, reference recipe, 100 epochs")


def render_population_memory(doc: dict) -> str:
    """The README's memory table from ``benchmarks/population_memory.py``'s JSON."""
    out = ["| K | state (params + Adam) MB | XLA arguments MB | temporaries MB |", "|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        out.append(f"| {r['members']} | {r['state_bytes'] / 1e6:.1f} | {r['argument_bytes'] / 1e6:.1f} | "
                   f"{r['temp_bytes'] / 1e6:.1f} |")
    return "\n".join(out)


def not_measured(paths: list[str]) -> str:
    return "Not measured yet: no " + " or ".join(f"`{os.path.relpath(p, os.path.dirname(HERE))}`" for p in paths) + "."


# -- commands ------------------------------------------------------------------------------------------------
def load(path: str) -> Any:
    with open(path) as f:
        doc = json.load(f)
    if isinstance(doc, dict):
        doc["_path"] = path
    return doc


def quietest(paths: list[str]) -> tuple[str, dict[str, float]]:
    """The run with the lowest mean load average (the rule for repeated runs; no choice by hand)."""
    means = {p: load(p)["load"]["mean_1min"] for p in paths}
    return min(means, key=means.get), means


README_SOURCES = {  # what the README's generated parts are rendered from, by default
    "cpu": os.path.join(RESULTS, "cpu_quick.json"), "startup": os.path.join(RESULTS, "startup_cpu.json"),
    "profile": os.path.join(RESULTS, "profile_torch_cpu.json"),
    "cpu_1thread": os.path.join(RESULTS, "cpu_quick_1thread.json"),
    "gpu": os.path.join(RESULTS, "gpu_throughput.json"), "gpu_profile": os.path.join(RESULTS, "profile_torch_gpu.json"),
    "gpu_legacy": os.path.join(RESULTS, "h200.json"),
    "conv": [os.path.join(RESULTS, f) for f in CONV_RESULTS],
    "population": os.path.join(RESULTS, "population_cpu.json"),
    "quality": os.path.join(os.path.dirname(HERE), "docs", "quality", "table.md"),
    "population_seeds": os.path.join(os.path.dirname(HERE), "docs", "quality", "population8_100ep.json"),
    "population_memory": os.path.join(RESULTS, "population_memory_cpu.json"),
}


def benchmark_section(src: dict) -> str:
    """The README's '## Benchmarks' section from the results files named in ``src``."""
    opt = {k: load(src[k]) if os.path.isfile(src[k]) else None
           for k in ("startup", "profile", "cpu_1thread", "gpu", "gpu_profile")}
    legacy = render_legacy_gpu(load(src["gpu_legacy"]), src["gpu_legacy"]) if os.path.isfile(src["gpu_legacy"]) \
        else None
    return render_readme(load(src["cpu"]), opt["startup"], opt["profile"], legacy, opt["cpu_1thread"],
                         opt["gpu"], opt["gpu_profile"])


def _same_command(command: str) -> str:
    """A benchmark command without where it wrote (``--json PATH``) and in today's module form."""
    command = re.sub(r" --json \S+", "", command)
    return re.sub(r"python benchmarks/(\w+)\.py", r"python -m benchmarks.\1", command)


def committed_runs(path: str) -> list[dict]:
    """Every version of the results file ``path`` in git's history, newest first, that ran the same
    command as the version in the working tree: the runs whose spread a headline must show."""
    now = load(path)
    try:
        rel = os.path.relpath(path, os.path.dirname(HERE))
        commits = subprocess.run(["git", "log", "--format=%H", "--", rel], capture_output=True, text=True,
                                 cwd=os.path.dirname(HERE), timeout=30).stdout.split()
        versions = [subprocess.run(["git", "show", f"{c}:{rel}"], capture_output=True, text=True,
                                   cwd=os.path.dirname(HERE), timeout=30).stdout for c in commits]
    except (OSError, subprocess.SubprocessError):
        versions = []
    runs, seen = [], set()
    for text in versions:
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if isinstance(doc, dict) and _same_command(doc.get("command", "")) == _same_command(now.get("command", "")) \
                and doc.get("created_utc") not in seen:
            seen.add(doc.get("created_utc"))
            runs.append(doc)
    if now.get("created_utc") not in seen:  # the working tree's run, not committed yet
        runs.insert(0, now)
    return runs


def ratio_spread(runs: list[dict], batch_size: int, precision: str = "float32") -> tuple[float, float, int]:
    """The lowest and highest headline ratio at ``batch_size`` over ``runs``, and how many runs had one."""
    ratios = [e["ratio"] for d in runs for e in d.get("summary", [])
              if e.get("batch_size") == batch_size and e.get("precision") == precision and e.get("ratio")]
    return min(ratios), max(ratios), len(ratios)


def _span(lo: float, hi: float) -> str:
    return f"{lo:.0f}" if round(lo) == round(hi) else f"{lo:.0f}–{hi:.0f}"


def missing_torch_rows(doc: dict) -> list[str]:
    """The PyTorch rows that apply to this run's model and device but that it did not run."""
    from benchmarks.bench_row import IMPLS

    model, device = doc["settings"].get("model", "mlp"), doc.get("device", "cpu")
    ran = {r["impl"] for r in doc.get("rows", [])}
    return [k for k, v in IMPLS.items() if v.framework == "torch" and model in v.models and k not in ran
            and (device == "gpu" or not v.gpu_only)]


def headline(src: dict) -> str:
    """The README's headline figures, each from its results file, with links to the pages."""
    cpu = load(src["cpu"])
    f32 = {e["batch_size"]: e for e in cpu.get("summary", []) if e["precision"] == "float32"}
    runs = committed_runs(src["cpu"])

    def spread(bs: int) -> str:
        lo, hi, n = ratio_spread(runs, bs)
        return f"{lo:.2f}–{hi:.2f}× over the {n} committed runs of that command" if n > 1 else "one run"
    mlp = " and ".join(f"{_ratio(e)} at batch {bs} ({spread(bs)})" for bs, e in sorted(f32.items()))
    conv = []
    for path in src["conv"]:
        if not os.path.isfile(path):
            continue
        doc = load(path)
        _, reduced = _widths(doc["settings"], ";")
        if reduced:
            continue
        model = doc["settings"]["model"]
        iters = [r["iters"] / r.get("batches_per_iter", 1) for r in _ok(doc["rows"]) if r["framework"] == "torch"]
        missing = missing_torch_rows(doc)
        for e in doc.get("summary", []):
            if e["precision"] == "float32":
                conv.append(f"{model.upper()} **{e['ratio']:.2f}×** (batch {e['batch_size']}; one run, "
                            f"{_span(min(iters), max(iters))} timed iterations per PyTorch row"
                            + (f"; without {', '.join(f'`{m}`' for m in missing)}" if missing else "") + ")")
    peak = cpu["peak_by_precision"]["float32"]["flops_per_s"] / 1e9
    lines = [f"- **Speed, this shared 2-core CPU** ({cpu['created_utc'][:10]}, float32 matmul peak {peak:,.0f} "
             "GFLOP/s in that run): jaxgan's images/s ÷ those of the fastest PyTorch row of the same run, each row "
             f"in its own process — the original GAN {mlp}; "
             + ("at the reference widths, " + ", ".join(conv) if conv else "the conv models: not measured")
             + ". [benchmarks](docs/benchmarks.md)"]
    if os.path.isfile(src["population_seeds"]):
        pop = load(src["population_seeds"])["population"]
        fd, score = pop["frechet_distance"], pop["classifier_score"]
        lines.append(f"- **Quality, offline digits**: the reference recipe (100 epochs) over {pop['members']} seeds "
                     f"from one population run: Fréchet distance {fd['mean']:.1f} ± {fd['std']:.1f}, classifier "
                     f"score {score['mean']:.2f} ± {score['std']:.2f} (n = 1,000 each, judge's features). "
                     "[quality](docs/quality.md)")
    return "\n".join(lines)


def render_block(name: str, sources: dict | None = None) -> str:
    """One generated block of the README or docs (scripts/render_docs.py names them)."""
    src = {**README_SOURCES, **(sources or {})}
    if name == "benchmarks":
        return benchmark_section(src).split("\n", 2)[2]  # the page gives the section its header
    if name == "headline":
        return headline(src)
    if name == "conv-bench":
        conv = [load(c) for c in src["conv"] if os.path.isfile(c)]
        return render_conv(conv) if conv else not_measured(src["conv"])
    path, fn = {"population-bench": (src["population"], render_population),
                "population-seeds": (src["population_seeds"], render_population_seeds),
                "population-memory": (src["population_memory"], render_population_memory)}[name]
    return fn(load(path)) if os.path.isfile(path) else not_measured([path])
