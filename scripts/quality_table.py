"""Regenerate the README's sample-quality table: run the trainings and evaluations, write
``docs/quality/*.json`` and a markdown table generated from those JSONs.

    python scripts/offline_mnist.py --data_dir data      # the 4,000 + 1,000 offline digits
    python scripts/quality_table.py --data_dir data      # trains (minutes), evaluates, writes the table
    python scripts/quality_table.py --table_only         # the markdown again from the JSONs

Every row is chosen by a rule written here, before anything is measured, and every row compares
sets of the same size (the 1,000 held-out digits against 1,000 generated ones), scored by the
judge jaxgan ships. The best-checkpoint row is the one the trainer kept with ``--eval_every 20
--keep_best fd`` (lowest Fréchet distance on its 2,000 samples drawn with noise seed 0); every
generated row here is drawn with ``--seed 1``, so the best row is not scored on the samples that
chose it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

from jaxgan.config import OneLineParser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(REPO, "docs", "quality")  # the README's table, its JSONs and images
SMOKE_OUT = "quality_smoke"
EVAL_SEED = 1  # not the trainer's --eval_every noise seed (0): see the docstring
COMMON = ["--dataset", "mnist", "--no_download"]


@dataclass(frozen=True)
class Run:
    name: str
    flags: tuple[str, ...]  # training flags beyond COMMON


@dataclass(frozen=True)
class Row:
    name: str  # docs/quality/<name>.json and .png
    label: str
    run: str
    flags: tuple[str, ...] = ()  # evaluate/sample flags beyond COMMON


RUNS = [
    Run("reference_100ep", ("--num_epochs", "100")),
    Run("ema_800ep", ("--num_epochs", "800", "--g_ema", "0.999", "--eval_every", "20", "--keep_best", "fd")),
    # dcgan/train.py's recipe (batch 128, 200 epochs, Adam 2e-4, its init) at a quarter of its
    # channel widths, so that it trains on a 2-core CPU in about half an hour.
    Run("dcgan_quarter_200ep", ("--model", "dcgan", "--g_hidden", "256,128,64,32", "--d_hidden", "32,64,128,256",
                                "--num_epochs", "200")),
]
ROWS = [
    Row("reference_100ep", "reference recipe, 100 epochs (newest checkpoint)", "reference_100ep"),
    Row("ema_800ep", "`--g_ema 0.999`, 800 epochs (newest checkpoint)", "ema_800ep"),
    Row("ema_800ep_best_fd", "`--g_ema 0.999`, 800 epochs, checkpoint kept by `--keep_best fd`", "ema_800ep",
        ("--best",)),
    Row("dcgan_quarter_200ep", "DCGAN, reference recipe at ¼ widths, 200 epochs (newest checkpoint)",
        "dcgan_quarter_200ep", ("--model", "dcgan")),
]


def user_command(module: str, *flags: str) -> str:
    """The command as a user types it in a folder holding ``data/`` (default paths)."""
    return " ".join(["python -m", module, *COMMON, *flags])


def run(argv: list[str], cwd: str, log: str) -> None:
    """Run one command, its output appended to ``log``; stop the script if it fails."""
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(argv)}\n")
        f.flush()
        proc = subprocess.run(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"error: {shlex.join(argv)} failed with exit code {proc.returncode}; see {log}")


def train(r: Run, args) -> None:
    folder = os.path.join(args.work, r.name)
    os.makedirs(folder, exist_ok=True)
    run([sys.executable, "-m", "jaxgan.train", *COMMON, *r.flags, "--data_dir", args.data_dir, "--no_progress"],
        folder, os.path.join(folder, "train.log"))


def evaluate(row: Row, args) -> None:
    folder = os.path.join(args.work, row.run)
    out = os.path.join(args.out, row.name)
    paths = ["--data_dir", args.data_dir, "--ckpt_dir", os.path.join(folder, "checkpoints")]
    seed = ("--seed", str(EVAL_SEED))
    log = os.path.join(folder, "evaluate.log")
    run([sys.executable, "-m", "jaxgan.evaluate", *COMMON, *row.flags, *seed, *paths, "--json", out + ".json"],
        folder, log)
    run([sys.executable, "-m", "jaxgan.sample", "--dataset", "mnist", *row.flags, *seed, "--ckpt_dir",
         os.path.join(folder, "checkpoints"), "--num_samples", "64", "--out", out + ".png"], folder, log)
    with open(out + ".json") as f:
        result = json.load(f)
    train_flags = next(r.flags for r in RUNS if r.name == row.run)
    result["table"] = {"label": row.label, "run": row.run,
                       "commands": [user_command("jaxgan.train", *train_flags),
                                    user_command("jaxgan.evaluate", *row.flags, *seed, "--json", row.name + ".json")]}
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=1)


def fmt_epoch(g: dict) -> str:
    epoch = g.get("epoch")
    return f"{epoch:g} ({g['step']:,})" if epoch is not None else f"— ({g['step']:,})"


def space_of(result: dict) -> str:
    """Where a row JSON compared its images (rows written before the field existed: the judge's 28px)."""
    return result.get("compared_at", "28px")


def markdown(out: str) -> str:
    """The table, from the JSONs in ``out`` alone."""
    results = []
    for row in ROWS:
        path = os.path.join(out, row.name + ".json")
        if os.path.isfile(path):
            with open(path) as f:
                results.append((row, json.load(f)))
    if not results:
        sys.exit(f"error: no row JSONs in {out}; run without --table_only first")
    judges = {r["judge"]["sha256"] for _, r in results}
    if len(judges) != 1:
        sys.exit("error: the row JSONs were scored by different judges; rerun them")
    # One ceiling per comparison space: the judge's own size, or a conv model's 32px path (real
    # digits through the same resizing as the samples). Rows of one space must agree on it.
    spaces: dict[str, dict] = {}
    for _, r in results:
        c = next(v for v in r["rows"].values() if v["set"] == "held_out")
        space = space_of(r)
        if spaces.setdefault(space, c) != c:
            sys.exit(f"error: rows compared at {space} disagree on their ceiling; rerun them")
    judge, ceiling = results[0][1]["judge"], spaces[space_of(results[0][1])]
    lines = [f"Judge: `{judge['name']}` (jaxgan's shipped MNIST classifier: {judge['train_images']:,} training "
             f"digits, test accuracy {judge['test_accuracy']:.3f} on {judge['test_images']:,} held out). Every "
             f"row: n = {ceiling['n']:,} images, compared with {results[0][1]['reference_images']:,} real "
             f"training digits; generated with `--bn batch` in batches of the training size, noise `--seed "
             f"{EVAL_SEED}`. A DCGAN's 32×32 samples are resized to the judge's 28×28 (PIL bilinear); its "
             "rows are compared with real digits that took the same path (Resize(32) as trained on, then back "
             "to 28), under their own ceiling: the resizing alone moves the judge's features. "
             "The best-checkpoint row is chosen by the trainer during training (`--eval_every 20 "
             "--keep_best fd`: lowest Fréchet distance on its 2,000 samples of noise seed 0), not after the fact, "
             f"and scored here on other samples (seed {EVAL_SEED}).", "",
             "| row | epoch (step) | n | Fréchet dist. ↓ | classifier score ↑ (× ceiling) | classes | KL to real ↓ "
             "| precision | recall | JSON |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]

    def cells(label, when, r, json_name, ceiling):
        ratio = r["classifier_score"] / ceiling["classifier_score"]
        return (f"| {label} | {when} | {r['n']:,} | {r['frechet_distance']:.2f} | {r['classifier_score']:.2f} "
                f"({ratio:.3f}×) | {r['classes_covered']}/10 | {r['kl_to_real']:.4f} | {r['precision']:.3f} | "
                f"{r['recall']:.3f} | {json_name} |")

    for space, c in spaces.items():
        users = [row for row, r in results if space_of(r) == space]
        label = "held-out real digits (ceiling)" if space == "28px" else \
            f"held-out real digits through the {space.split(' ')[0]} path (ceiling of the rows below it)"
        lines.append(cells(label, "—", c, f"any row's of this space (all {len(users)} agree)", c))
        for row, r in results:
            if space_of(r) != space:
                continue
            (generated,) = [v for v in r["rows"].values() if v["set"] == "generated" and v["comparable_with_ceiling"]]
            assert generated["n"] == c["n"], f"{row.name}: not a matched-size row"
            lines.append(cells(row.label, fmt_epoch(r["generator"]), generated, f"`docs/quality/{row.name}.json`", c))
    shown = [(row, r) for row, r in results if os.path.isfile(os.path.join(out, row.name + ".png"))]
    if shown:  # 64 samples of each row's generator (jaxgan.sample, the same flags and seed)
        lines += ["", "| " + " | ".join(row.label for row, _ in shown) + " |", "|" + "---|" * len(shown),
                  "| " + " | ".join(f"![](quality/{row.name}.png)" for row, _ in shown) + " |"]
    lines += ["", "Commands (in a folder holding the offline digits in `data/`; each run in its own folder):", "",
              "```bash", "python scripts/offline_mnist.py --data_dir data"]
    seen = set()
    for row, r in results:
        sample = " ".join(["python -m jaxgan.sample --dataset mnist", *row.flags, "--seed", str(EVAL_SEED),
                           "--num_samples 64 --out", row.name + ".png"])
        for c in [*r["table"]["commands"], sample]:
            if c not in seen:
                seen.add(c)
                lines.append(c)
    lines += ["```", "", "All of it again (trainings, evaluations, JSONs, this table): "
              "`python scripts/quality_table.py --data_dir data`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="quality_table.py", description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="data", help="the offline digits (default data)")
    p.add_argument("--work", default="out_quality", help="where the runs train (default out_quality)")
    p.add_argument("--out", help="where the JSONs, images and table.md go (default docs/quality; with --smoke "
                   f"./{SMOKE_OUT})")
    p.add_argument("--rows", default=",".join(r.name for r in ROWS),
                   help="rows to (re)make, comma-separated (default all)")
    p.add_argument("--skip_training", action="store_true",
                   help="evaluate the checkpoints already in --work (default off: train first)")
    p.add_argument("--table_only", action="store_true", help="only rebuild table.md from the JSONs (default off)")
    p.add_argument("--fragment", help="also write the table here (default: none)")
    p.add_argument("--smoke", action="store_true", help="the docs' tiny-size override, not a table: the render "
                   "path only (a row trains for minutes): docs/quality's row JSONs copied to --out, table.md from them")
    args = p.parse_args(argv)
    if args.smoke:
        args.out = SMOKE_OUT if args.out is None else args.out
        if os.path.realpath(args.out) == os.path.realpath(SHIPPED):
            p.error(f"--smoke never writes the shipped {os.path.relpath(SHIPPED, REPO)}; give another --out")
    args.out = SHIPPED if args.out is None else args.out
    args.data_dir, args.work, args.out = map(os.path.abspath, (args.data_dir, args.work, args.out))
    names = [n for n in args.rows.split(",") if n]
    unknown = sorted(set(names) - {r.name for r in ROWS})
    if unknown:
        print(f"error: unknown rows {unknown}; known: {[r.name for r in ROWS]}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    if args.smoke:  # the row JSONs as a run of the rows would leave them, then the same render below
        for row in ROWS:
            if row.name in names:
                shutil.copyfile(os.path.join(SHIPPED, row.name + ".json"), os.path.join(args.out, row.name + ".json"))
    elif not args.table_only:
        rows = [r for r in ROWS if r.name in names]
        if not args.skip_training:
            for r in RUNS:
                if any(row.run == r.name for row in rows):
                    train(r, args)
        for row in rows:
            evaluate(row, args)
    text = markdown(args.out)
    for path in filter(None, [os.path.join(args.out, "table.md"), args.fragment]):
        with open(path, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
