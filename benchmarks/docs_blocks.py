"""The README's and docs' generated blocks about benchmarks, each rendered from its committed
results file: ``render_block(name)`` (``python -m scripts.render_docs`` calls it)."""

from __future__ import annotations

import os

from benchmarks.analysis import _ok, committed_runs, load, missing_torch_rows, ratio_spread
from benchmarks.tables import (_pct, _ratio, _widths, _x, cpu_truth_table, omp_policy, one_thread_section,
                               population_vs_torch, precision_detail, render_legacy_gpu, render_profile,
                               render_startup, selection_note, versions)

HERE = os.path.dirname(os.path.abspath(__file__))


RESULTS = os.path.join(HERE, "results")

# The DCGAN/WGAN runs the README shows, in table order (benchmarks/results/).
CONV_RESULTS = ("cpu_dcgan_reference.json", "cpu_dcgan_reduced.json", "cpu_wgan_reference.json",
                "cpu_wgan_reduced.json")

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
           "JAX and in PyTorch (the faster counts); on CPU the memory bandwidth too, for a roofline. The rows "
           "at one batch size start together and import their frameworks side by side; then each builds, "
           "compiles and warms up alone, and they take turns timing, one round each (A B C A B C …).", "",
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
           + (f" The whole command took {cpu['total_s'] / 60:.1f} minutes." if cpu.get("total_s") else "")
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

def _run_line(doc: dict) -> str:
    f32 = doc["peak_by_precision"].get("float32", {})
    return (f"`{doc['command']}` ({doc['created_utc'][:10]}, `benchmarks/results/"
            f"{os.path.basename(doc.get('_path', '?'))}` and `.md`; {doc['device_name']}; float32 matmul peak in "
            f"that run {f32.get('flops_per_s', float('nan')) / 1e9:,.0f} GFLOP/s; mean load average "
            f"{doc['load']['mean_1min']:.2f})")

def render_conv(docs: list[dict]) -> str:
    """DCGAN/WGAN rows from throughput JSONs made with --model dcgan|wgan: per run and batch size,
    jaxgan's path against the fastest PyTorch (analysis.summarize's rule) and what each alternative
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
                       f"`{e['fastest_torch']}` | {_ratio(e)} | {_x(e['ratio_vs_reference'])} | "
                       f"{ratio('jax_scan_other_conv', 'jax_scan', bs)} | {ratio('jax_scan_bf16', 'jax_scan', bs)} | "
                       f"{ratio('torch_channels_last', 'torch_tuned', bs)} | {_pct(e.get('torch_peak_fraction'))} / "
                       f"{_pct(e.get('jax_peak_fraction'))} |")
        runs.append(f"{st['model'].upper()} {'reduced' if reduced else 'reference'} widths: " + _run_line(doc))
    return "\n".join(out + ["", "Runs: " + "; ".join(runs) + "."])

def render_population(doc: dict) -> str:
    """The population rows of one throughput JSON made with --population (analysis.summarize_population)."""
    out = ["| model | batch per member | K | aggregate img/s ÷ one run | ÷ fastest PyTorch, K runs one after another "
           "| % of float32 peak: K runs / one run |",
           "|---|---:|---:|---:|---:|---:|"]
    model = doc["settings"].get("model", "mlp")
    for e in doc.get("population_summary", []):
        torch = population_vs_torch(e)
        out.append(f"| {model.upper()} | {e['batch_size']} | {e['members']} | **{e['vs_one_run']:.2f}×** | {torch} | "
                   f"{_pct(e.get('peak_fraction'))} / {_pct(e.get('one_run_peak_fraction'))} |")
    missing = missing_torch_rows(doc)
    left_out = f" PyTorch rows not in this run: {', '.join(f'`{m}`' for m in missing)}." if missing else ""
    return "\n".join(out + ["", "Run: " + _run_line(doc) + "." + left_out])

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
    run = (f"`{doc['command']}`, {doc['created_utc']}, {doc['cpu']}, " if "command" in doc else "")
    run = ("a --smoke run (toy sizes, no figure): " if doc.get("smoke") else "") + run
    return "\n".join(out + ["", f"Run: {run}jax {doc['jax']}, compiled for the {doc['backend']} backend."])

def not_measured(paths: list[str]) -> str:
    return "Not measured yet: no " + " or ".join(f"`{os.path.relpath(p, os.path.dirname(HERE))}`" for p in paths) + "."

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

def _span(lo: float, hi: float) -> str:
    return f"{lo:.0f}" if round(lo) == round(hi) else f"{lo:.0f}–{hi:.0f}"

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
                conv.append(f"{model.upper()} {_ratio(e)} (batch {e['batch_size']}; one run, "
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
