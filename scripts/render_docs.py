"""Render every generated block of README.md and docs/*.md from the committed results, or check
that they are current.

    python -m scripts.render_docs            # rewrite the blocks in place
    python -m scripts.render_docs --check    # exit 1 (naming the files) if a block is out of date

A block is the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; ``BLOCKS`` says
what renders each NAME. No figure in the README or docs is typed by hand: each comes from a JSON
in the repository through one of these functions, and tests/test_docs.py fails when a page
drifts from what they render.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from collections.abc import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ("README.md", *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md"))))


def _load(rel: str) -> dict:
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return json.load(f)


# -- the 1-D figure ------------------------------------------------------------------------------
TOY1D = "docs/toy1d/toy1d.json"
ABLATIONS = (("none (default)", "default"), ("`--r1 0`", "r1_0"), ("`--d_lr_ratio 1`", "d_lr_ratio_1"),
             ("`--r1 0 --d_lr_ratio 1`", "r1_0_d_lr_ratio_1"), ("`--ema 0`", "ema_0"))


def _meets(row: dict, targets: dict) -> bool:
    return all(row[k] <= v for k, v in targets.items())


def toy1d_seeds() -> str:
    d = _load(TOY1D)
    s, t = d["settings"], d["targets"]
    seeds = ", ".join(str(r["seed"]) for r in d["seeds"])
    lines = [f"`{d['command']}` trains seeds {seeds} together as one compiled program (`jax.vmap` over the "
             f"seeds' states and keys, `lax.scan`/`fori_loop` over the steps; {s['steps']:,} steps at batch "
             f"{s['batch']:,} each, then D refitted to the final G for {s['d_refit']:,} steps): z ~ U[0, 1), "
             f"x ~ N(0, 1). Per seed, W1(G's samples, N(0, 1)) and max |D(x) − ½| on [−2, 2] with D refitted "
             f"to the final G (targets ≤ {t['w1']} and ≤ {t['max_abs_d_minus_half']}; `{TOY1D}`):", "",
             "| seed | W1 | max abs(D − ½) on [−2, 2] |", "|---:|---:|---:|"]
    lines += [f"| {r['seed']} | {r['w1']:.4f} | {r['max_abs_d_minus_half']:.4f} |" for r in d["seeds"]]
    lines += [f"| **worst** | {d['worst']['w1']:.4f} | {d['worst']['max_abs_d_minus_half']:.4f} |",
              f"| **mean** | {d['mean']['w1']:.4f} | {d['mean']['max_abs_d_minus_half']:.4f} |"]
    return "\n".join(lines)


def toy1d_ablations() -> str:
    lines = ["| change | seeds meeting both targets | worst W1 | worst max abs(D − ½) | command |",
             "|---|---:|---:|---:|---|"]
    for label, name in ABLATIONS:
        d = _load(f"docs/toy1d/seeds0-19/{name}.json")
        met = sum(_meets(r, d["targets"]) for r in d["seeds"])
        command = re.sub(r" --out \S+", "", d["command"])
        lines.append(f"| {label} | {met}/{len(d['seeds'])} | {d['worst']['w1']:.4f} | "
                     f"{d['worst']['max_abs_d_minus_half']:.4f} | `{command}` |")
    return "\n".join(lines)


# -- float32 against float64, the DCGAN and WGAN loops ------------------------------------------------
PARITY = "benchmarks/results/parity_dcgan_wgan.json"


def parity_float32() -> str:
    d = _load(PARITY)
    worst64 = max(max(v for k, v in d[f"{m}_float64_vs_torch_float64"].items() if k.startswith("max_abs"))
                  for m in ("dcgan", "wgan"))
    lines = [f"`{d['command']}` ({d['settings']['iterations']} iterations, n_critic {d['settings']['n_critic']}, "
             f"batch {d['settings']['batch_size']}): jaxgan in float64 against PyTorch in float64, largest difference "
             f"{worst64:.1e}; jaxgan in float32 against PyTorch in float64:"]
    for m, name in (("dcgan", "DCGAN"), ("wgan", "WGAN")):
        r = d[f"{m}_float32_vs_torch_float64"]
        lines.append(f"- {name} in float32: G's parameters within {r['max_abs_diff_gp']:.1e}, D's "
                     f"{r['max_abs_diff_dp']:.1e}; running statistics G {r['max_abs_diff_gs']:.1e}, D "
                     f"{r['max_abs_diff_ds']:.1e}; BatchNorm-fed biases {r['max_abs_diff_pre_bn_biases']:.1e}; "
                     f"{r['elements_off_by_more_than_1e-5']:,} of {r['elements']:,} values off by more than 1e-5.")
    return "\n".join(lines)


# -- what streaming the data costs ------------------------------------------------------------------
STREAMING = "benchmarks/results/streaming_cpu.json"


def streaming_cpu() -> str:
    """benchmarks.streaming's run: the same training run device-resident and streamed, in turns."""
    d = _load(STREAMING)
    runs, load = d["seconds"], d["load_average_1min"]
    every = [t for v in runs.values() for t in v]
    return (f"`{d['command']}` ({d['when'][:10]}, {d['cpu']}, {d['cpu_count']} cores, jax {d['jax']}, backend "
            f"{d['backend']}): the {d['model'].upper()} GAN at its reference widths, {d['images']:,} images, batch "
            f"{d['batch']}, {d['steps_per_call']} steps a chunk, {d['epochs']} epochs a run, a budget of "
            f"{d['data_budget']:,} bytes (two chunks). Median of {len(runs['resident'])} runs each, in turns: "
            f"resident {d['median_s']['resident']:.2f} s, streamed {d['median_s']['streamed']:.2f} s, streamed / "
            f"resident **{d['streamed_over_resident']:.3f}** (every run {min(every):.2f}–{max(every):.2f} s). "
            f"1-minute load average over the runs: mean {load['mean']:.2f}, max {load['max']:.2f}; on a CPU the "
            "stream adds the host's gather and copy only, and no overlap with a device can show.")


# -- PyTorch's samples and jaxgan's, one judge ------------------------------------------------------
SIDE_BY_SIDE = "docs/quality/side_by_side"


def _generated(doc: dict) -> list[dict]:
    return [r for r in doc["rows"].values() if r["set"] == "generated" and r["comparable_with_ceiling"]]


def side_by_side() -> str:
    """The reference's samples (one evaluate --samples JSON per seed) beside jaxgan's (one
    population evaluate JSON), each side's mean ± std (ddof 1) over its seeds, at the same n."""
    from jaxgan import quality

    torch_docs = [_load(p) for p in sorted(glob.glob(os.path.join(REPO, SIDE_BY_SIDE, "torch_*.json")))]
    ours = _load(os.path.join(SIDE_BY_SIDE, "jaxgan_pop.json"))
    sides = {"PyTorch reference": [r for d in torch_docs for r in _generated(d)], "jaxgan": _generated(ours)}
    n = {r["n"] for rows in sides.values() for r in rows}
    if len(n) != 1:
        raise ValueError(f"the two sides were scored at different n: {sorted(n)}")
    (ceiling,) = [r for r in ours["rows"].values() if r["set"] == "held_out"]
    summaries = {name: quality.summarize(rows) for name, rows in sides.items()}
    head = " | ".join(f"{name} ({len(rows)} seeds)" for name, rows in sides.items())
    lines = [f"n = {n.pop():,} images per seed on each side, the same judge and held-out split "
             f"(`{SIDE_BY_SIDE}/`); mean ± std (ddof 1) over the seeds:", "",
             f"| metric | {head} | held-out real (ceiling) |", "|---|---:|---:|---:|"]
    for key, (label, f) in quality.SHOWN.items():
        cells = [f"{s[key]['mean']:{f}} ± {s[key]['std']:{f}}" for s in summaries.values()]
        lines.append(f"| {label} | {' | '.join(cells)} | {ceiling[key]:{f}} |")
    return "\n".join(lines)


# -- the conditional MLP over seeds ----------------------------------------------------------------
CONDITIONAL = "docs/quality/cond_final.json"  # the chosen recipe's run (scripts/conditional_recipe.py)
SELECTION = "docs/quality/cond_selection/selection.json"
GOAL_NAMES = {"label_accuracy": "label accuracy", "worst_class_accuracy": "worst class's label accuracy",
              "worst_recall_ratio": "worst class's recall ÷ its ceiling"}


def conditional_seeds() -> str:
    """The conditional population's members (one evaluate JSON): per member the judge's accuracy
    on the asked labels, its worst class's, and its worst class's recall over that class's
    ceiling (``quality.conditional_goals``); the mean ± std (ddof 1) over the members, and how
    many meet each goal."""
    import numpy as np

    from jaxgan import quality

    d = _load(CONDITIONAL)
    members = list(d["conditional"].values())
    goals = [quality.conditional_goals(m) for m in members]
    n = {m["n"] for m in members}
    ceiling = {m["judge_held_out_accuracy"] for m in members}
    recipe = d.get("recipe", {})
    lines = [f"| {len(members)} seeds, conditional MLP, recipe `{recipe.get('name', '?')}` | mean ± std (ddof 1) | "
             "min | max | goal | members meeting it |", "|---|---:|---:|---:|---:|---:|"]
    for key, name in GOAL_NAMES.items():
        v = np.asarray([g[key] for g in goals])
        goal = quality.CONDITIONAL_GOALS[key]
        lines.append(f"| {name} | {v.mean():.3f} ± {v.std(ddof=1):.3f} | {v.min():.3f} | {v.max():.3f} | "
                     f"≥ {goal} | {int(np.sum(v >= goal))} of {len(v)} |")
    lines += ["", f"n = {'/'.join(map(str, sorted(n)))} images per member, every class in turn; the judge's own "
              f"accuracy on the held-out digits (the ceiling): {'/'.join(f'{c:.3f}' for c in sorted(ceiling))} "
              f"(`{CONDITIONAL}`); members meeting every goal: {sum(g['meets_all'] for g in goals)} of "
              f"{len(goals)}."]
    if recipe:
        lines += ["", "```", recipe["train"], recipe["evaluate"] + " --json cond_final.json", "```"]
    return "\n".join(lines)


def conditional_selection(path: str = SELECTION) -> str:
    """How the recipe was chosen: each candidate's members against the goals on the validation
    split (``scripts/conditional_recipe.py``), the rule, and the choice."""
    import numpy as np

    d = _load(path)
    lines = ["| round | candidate | flags | members meeting every goal | mean attainment | "
             + " | ".join(f"mean {n}" for n in GOAL_NAMES.values()) + " |",
             "|---:|---|---|---:|---:|" + "---:|" * len(GOAL_NAMES)]
    for name, c in d["candidates"].items():
        means = [float(np.mean([m[k] for m in c["members"]])) for k in GOAL_NAMES]
        mark = f"**{name}** (chosen)" if name == d["chosen"] else name
        lines.append(f"| {c.get('round', 1)} | {mark} | `{' '.join(c['flags']) or '(none)'}` | {c['members_meeting_all']} of "
                     f"{len(c['members'])} | {c['mean_attainment']:.3f} | " + " | ".join(f"{v:.3f}" for v in means) + " |")
    split = d["split"]
    lines += ["", f"Split: {split['rule']} ({split.get('train', '?'):,} trained on, {split.get('validation', '?'):,} "
              f"scored against, with a judge of their own). Rule (in code, `choose`): {d['rule']}. "
              f"Goals per member: " + ", ".join(f"{GOAL_NAMES[k]} ≥ {v}" for k, v in d["goals"].items())
              + f" (`{path}`)."]
    return "\n".join(lines)


CONV_SELECTION = "docs/quality/cond_conv/selection.json"


def conditional_conv() -> str:
    """DCGAN's two conditionings, measured as the MLP's candidates are (``--study conv``)."""
    return conditional_selection(CONV_SELECTION)


# -- the registry ----------------------------------------------------------------------------------
def _flags() -> str:
    from jaxgan.config import flag_table

    return flag_table()


def _quality() -> str:
    with open(os.path.join(REPO, "docs", "quality", "table.md"), encoding="utf-8") as f:
        return f.read().rstrip("\n")


# A run recorded before the commands became modules printed ``python benchmarks/x.py``; the same
# command today is ``python -m benchmarks.x`` (same arguments), which is what a reader can run.
_SCRIPT_FORM = re.compile(r"python benchmarks/(\w+)\.py")


def _report(name: str) -> Callable[[], str]:
    def render() -> str:
        from benchmarks import docs_blocks

        return _SCRIPT_FORM.sub(r"python -m benchmarks.\1", docs_blocks.render_block(name))
    return render


BLOCKS: dict[str, Callable[[], str]] = {
    "flags": _flags,
    "quality": _quality,
    "toy1d-seeds": toy1d_seeds,
    "toy1d-ablations": toy1d_ablations,
    "parity-float32": parity_float32,
    "side-by-side": side_by_side,
    "streaming-cpu": streaming_cpu,
    "conditional-seeds": conditional_seeds,
    "conditional-selection": conditional_selection,
    "conditional-conv": conditional_conv,
    **{name: _report(name) for name in ("headline", "benchmarks", "conv-bench", "population-bench",
                                        "population-seeds", "population-memory")},
}
_BLOCK = re.compile(r"<!-- ([a-z0-9-]+):begin -->\n.*?<!-- \1:end -->", re.S)


def render(text: str) -> str:
    """``text`` with every block rendered anew; an unknown block name is an error."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in BLOCKS:
            raise KeyError(f"no renderer for block {name!r}")
        return f"<!-- {name}:begin -->\n{BLOCKS[name]()}\n<!-- {name}:end -->"
    return _BLOCK.sub(one, text)


def stale() -> list[str]:
    """The pages whose blocks differ from what the results render."""
    out = []
    for page in PAGES:
        with open(os.path.join(REPO, page), encoding="utf-8") as f:
            text = f.read()
        if render(text) != text:
            out.append(page)
    return out


def history_missing() -> str | None:
    """Why this checkout cannot render the pages, or None: the headline's spread counts every run of
    its command in git's history (benchmarks.analysis.committed_runs), and the H200 table names the
    commit that added its JSON (benchmarks.tables.git_added); a shallow clone holds neither."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], capture_output=True, text=True,
                             cwd=REPO, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "the pages are rendered from git's history, and git could not be run here"
    if out.returncode != 0:
        return "the pages are rendered from git's history, and this folder is not a git checkout"
    if out.stdout.strip() == "true":
        return ("this is a shallow clone; the pages are rendered from git's history (every committed run of "
                "a headline's command): run git fetch --unshallow first")
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.render_docs", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check; exit 1 if a page is out of date")
    p.add_argument("--smoke", action="store_true", help="the docs' tiny-size override (tests/test_doc_commands.py): "
                   "as --check, writing nothing")
    args = p.parse_args(argv)
    why = history_missing()
    if why:  # rendered without it, the headline's spread and the H200 heading would differ, not fail
        print(f"error: {why}", file=sys.stderr)
        return 2
    if args.check or args.smoke:
        bad = stale()
        if bad:
            print(f"out of date: {', '.join(bad)}; run: python -m scripts.render_docs", file=sys.stderr)
            return 1
        return 0
    for page in PAGES:
        path = os.path.join(REPO, page)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = render(text)
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"rendered {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
