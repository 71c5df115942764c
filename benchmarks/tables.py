"""Markdown tables from one result JSON each: a throughput run's (median and min-max per row, each
ratio with its per-round range), the old H200 table labelled for what it measured, a profile, a
start-up run. Every number printed is read from the results; nothing is measured here."""

from __future__ import annotations

import json
import math
import os
import subprocess

from benchmarks.analysis import _ok

HERE = os.path.dirname(os.path.abspath(__file__))


def _rate(r: dict) -> str:
    """A row's img/s: the median of its rounds, and their range when it took several."""
    rounds = r.get("img_per_s_rounds") or []
    spread = f" ({min(rounds):,.0f}–{max(rounds):,.0f})" if len(rounds) > 1 else ""
    return f"{r['img_per_s']:,.0f}{spread}"

def population_vs_torch(e: dict) -> str:
    """A population row's cell against the fastest PyTorch row, which that row is named by."""
    return f"{e['vs_fastest_torch']:.2f}× ({e['fastest_torch']})" if e.get("vs_fastest_torch") else "not run"

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
            "Rule (in `benchmarks/analysis.py: summarize`): per batch size and precision, the fastest PyTorch row is the torch "
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
                "Rule (in `benchmarks/analysis.py: summarize_population`): per batch size (per member) and population size K, "
                "the population row's images/s of all members together divided by jaxgan's one run (row (e)) "
                "at the same per-member batch, measured in this run (× one run); in a column of its own, the same "
                "images/s divided by the fastest PyTorch row at that batch and precision (`analysis.fastest_torch`), "
                "which is what K PyTorch runs one after another reach.", "",
                "| batch per member | K | aggregate img/s | one run img/s | × one run | × fastest PyTorch (K runs one "
                "after another) | % of peak (K runs / one run) |",
                "|---:|---:|---:|---:|---:|---:|---:|"]
        for e in doc["population_summary"]:
            torch = population_vs_torch(e)
            out.append(f"| {e['batch_size']} | {e['members']} | {e['img_per_s']:,.0f} | {e['one_run_img_per_s']:,.0f} "
                       f"| **{e['vs_one_run']:.2f}×** | {torch} | {_pct(e.get('peak_fraction'))} / "
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
            + f". jax_scan fuses {fused_steps(s)} per call (at most an epoch's full batches). "
            + (f"Each row compiled once in its own process, then the rows at one batch size took turns, "
               f"{s['rounds']} rounds of at least {s['min_time']:g} s each (A B C A B C ...); a row's img/s is its "
               "rounds' median, and each ratio's range pairs round k with round k. " if s.get("rounds", 1) > 1
               else "")
            + "Times exclude warm-up and compilation (reported); the device is synchronised before the "
            "clock is read. Every implementation is credited with the same FLOPs (PyTorch's G step "
            "also computes D's weight gradients, which are not credited)."]
    return "\n".join(out)

def fused_steps(settings: dict) -> str:
    """"50 steps", or per batch size where they differ ("50 steps at batch 64, 7 at 512")."""
    by = settings.get("steps_per_call_by_batch") or {str(b): settings["steps_per_call"]
                                                     for b in settings["batch_sizes"]}
    if len(set(by.values())) == 1:
        return f"{next(iter(by.values()))} steps"
    first, *rest = by.items()
    return f"{first[1]} steps at batch {first[0]}, " + ", ".join(f"{n} at {b}" for b, n in rest)

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
    return (f" It is the quietest of {len(sel['candidates'])} runs by the rule in `benchmarks/analysis.py: quietest` "
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
            f"{doc['load']['mean_1min']:.2f}, max {doc['load']['max_1min']:.2f}"
            + (f"; the whole command took {doc['total_s'] / 60:.1f} minutes" if doc.get("total_s") else "")
            + "):", "", *load_warning(doc),
            *cpu_truth_table(doc)]

def _widths(settings: dict, sep: str) -> tuple[str, bool]:
    """A conv run's channel widths as text, and whether they are reduced from the reference's."""
    from jaxgan.convnets import D_HIDDEN as DCGAN_D_HIDDEN
    from jaxgan.convnets import G_HIDDEN as DCGAN_G_HIDDEN

    g, d = settings.get("g_hidden"), settings.get("d_hidden")
    text = f"G {','.join(map(str, g or DCGAN_G_HIDDEN))}{sep} D {','.join(map(str, d or DCGAN_D_HIDDEN))}"
    return text, bool(g or d)
