"""What follows from the measurements, with no formatting: each row's FLOPs, peak fraction and
roofline, the "fastest PyTorch" rule (``summarize``), populations against one run, the rule that
keeps one of repeated runs (``quietest``), and the committed runs of a command whose spread a
headline shows. Pure functions of the result JSON (and, for ``committed_runs``, git's history)."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


# The pair each headline compares at one precision: jaxgan's training path at that precision.
JAX_PATH = {"float32": "jax_scan", "tf32": "jax_scan_tf32"}

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

def torch_rows(rows: list[dict], bs: int, precision: str | None) -> list[dict]:
    """The PyTorch rows that ran at batch ``bs`` and ``precision`` (None: any precision): the
    candidates for "fastest"."""
    return [r for r in rows if r["framework"] == "torch" and r["batch_size"] == bs
            and precision in (None, r["precision"])]

def fastest_torch(rows: list[dict], bs: int, precision: str | None) -> dict | None:
    """The one rule for "the fastest PyTorch": the torch row with the most img/s at that batch and
    precision (None: any precision; None when none ran)."""
    return max(torch_rows(rows, bs, precision), key=lambda r: r["img_per_s"], default=None)

def summarize_population(doc: dict) -> list[dict]:
    """Per batch size and population size K: the population row's aggregate img/s (all members)
    divided by jaxgan's one run (row e, jax_scan) at the same per-member batch, from the same run;
    and divided by the fastest PyTorch row at that batch and precision (``summarize``'s rule), which
    is K PyTorch runs one after another: they train K times the images in K times the time."""
    rows = _ok(doc.get("rows", []))
    out = []
    for bs in doc["settings"]["batch_sizes"]:
        one = next((r for r in rows if r["impl"] == "jax_scan" and r["batch_size"] == bs), None)
        for r in rows:
            if r["impl"] == "jax_population" and r["batch_size"] == bs and one:
                torch = fastest_torch(rows, bs, r["precision"])
                out.append({"fastest_torch": torch and torch["impl"],
                            "vs_fastest_torch": torch and r["img_per_s"] / torch["img_per_s"],
                            "batch_size": bs, "members": r["members"], "img_per_s": r["img_per_s"],
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
        torch_any = fastest_torch(at, bs, None)
        for precision, jax_impl in JAX_PATH.items():
            jx = next((r for r in at if r["impl"] == jax_impl), None)
            cands = torch_rows(at, bs, precision)
            best = fastest_torch(at, bs, precision)
            if not jx or not best:
                continue
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

def _same_command(command: str) -> str:
    """A benchmark command without where it wrote (``--json PATH``) and in today's module form."""
    command = re.sub(r" --json \S+", "", command)
    return re.sub(r"python benchmarks/(\w+)\.py", r"python -m benchmarks.\1", command)

def _versions(path: str) -> list[str]:
    """The texts of ``path`` in every commit of git's history that touched it, then in the working tree."""
    where, name = os.path.split(os.path.abspath(path))
    try:
        commits = subprocess.run(["git", "log", "--format=%H", "--", name], capture_output=True, text=True,
                                 cwd=where, timeout=30).stdout.split()
        texts = [subprocess.run(["git", "show", f"{c}:./{name}"], capture_output=True, text=True, cwd=where,
                                timeout=30).stdout for c in commits]
    except (OSError, subprocess.SubprocessError):
        texts = []
    if os.path.isfile(path):
        with open(path) as f:
            texts.append(f.read())
    return texts

def committed_runs(path: str) -> list[dict]:
    """Every run of the command of the results file ``path`` that the repository holds, newest first:
    each version of ``path`` in git's history and in the working tree, and of the candidate runs a
    rule chose it from (``runs/<name>-<i>.json`` beside it, kept or not). The runs whose spread a
    headline must show."""
    now = load(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    candidates = glob.glob(os.path.join(os.path.dirname(os.path.abspath(path)), "runs", f"{stem}-*.json"))
    runs = {}
    for text in (t for p in [path, *sorted(candidates)] for t in _versions(p)):
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("created_utc") \
                and _same_command(doc.get("command", "")) == _same_command(now.get("command", "")):
            runs[doc["created_utc"]] = doc
    return [runs[k] for k in sorted(runs, reverse=True)]

def ratio_spread(runs: list[dict], batch_size: int, precision: str = "float32") -> tuple[float, float, int]:
    """The lowest and highest headline ratio at ``batch_size`` over ``runs``, and how many runs had one."""
    ratios = [e["ratio"] for d in runs for e in d.get("summary", [])
              if e.get("batch_size") == batch_size and e.get("precision") == precision and e.get("ratio")]
    return min(ratios), max(ratios), len(ratios)

def missing_torch_rows(doc: dict) -> list[str]:
    """The PyTorch rows that apply to this run's model and device but that it did not run."""
    from benchmarks.rows import IMPLS

    model, device = doc["settings"].get("model", "mlp"), doc.get("device", "cpu")
    ran = {r["impl"] for r in doc.get("rows", [])}
    return [k for k, v in IMPLS.items() if v.framework == "torch" and model in v.models and k not in ran
            and (device == "gpu" or not v.gpu_only)]
