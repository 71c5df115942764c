"""Every benchmarks/scripts command the README and docs print runs, at toy size.

The commands are parsed from the pages themselves (fenced code blocks and inline code), never
from a list kept here. The one tiny-size override, documented in docs/benchmarks.md: append
``--smoke`` (each command's own flag: the same code path at toy sizes; what it writes is no
figure) and move the file it writes (``--json PATH``, or a ``$TMP`` path) into a temporary folder,
which is also the folder it runs in. A run passes when it exits 0 and writes the file it claims:
its ``--json``, or for a command without one what ``CLAIMS`` says it writes. A shell loop's
variable in a printed command (``$s``) becomes ``0``.

Which of a module's printed commands run (``to_run``): each whose flag names are not all among
another printed command's for that module (of commands with the same flag names, the first
printed). Every flag the pages print for a module is then used, in a command as printed (run,
or for the throughput command's planned ones, below, checked and planned); the values a skipped
command gives are not. Not run, so: ``--quick --json F`` beside ``--quick
--threads 1 --json F``, a module named in prose, and the WGAN twins of the DCGAN commands, which
differ in values (``--model wgan``, ``--steps_per_call 5``, ``--batch_sizes 64``; WGAN's rows run
in tests/test_benchmarks.py). Each such run would cost another compile in a tight budget.
The forms of all of them are checked: benchmarks run as ``python -m benchmarks.<name>`` from the
repository root. Of a module that runs as a process and takes ``--plan`` (the throughput
command: several fresh processes a run even at --smoke), only the first kept command runs; the
others are planned (``PLANNED``): ``--plan`` for ``--smoke``, in this process, and the plan they
print must hold their printed values.

The two shell scripts are the one exception, kept out by ``SHELL`` with their reason; what is
checked of them instead: they parse, and every Python module they run is one this file runs
(``RUN_ELSEWHERE``: or one that other tests run).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback

import pytest

from tests import beside
from tests.conftest import REPO, blob_images, run_main

PAGES = ("README.md", *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md"))))
COMMAND = re.compile(r"(?:python3? (?:-m (?:benchmarks|scripts)\.\w+|(?:benchmarks|scripts)/\w+\.py)"
                     r"|bash benchmarks/\w+\.sh)(?: [^`\n|&;#]*)?")

# The shell scripts' own smoke switches run every command they hold at toy size, one after the
# other: minutes (RUN_CPU_SMOKE=1 runs the throughput command 4 times, startup twice, ...), over
# this file's share of the suite. They stay out of the runs; test_the_shell_scripts_... checks them.
SHELL = {"benchmarks/run_cpu.sh": "RUN_CPU_SMOKE=1 takes minutes: its commands, each run here once",
         "benchmarks/gpu_run.sh": "GPU_RUN_CPU_CHECK=1 takes minutes: its commands, each run here once"}
# Python commands inside the shell scripts that the pages print nowhere, and where they are run.
RUN_ELSEWHERE = {"jaxgan.train": "tests/test_cli.py and most test files run the trainer",
                 "benchmarks.select_run": "test_the_shell_scripts_... below, on the throughput run's JSON"}

# Commands whose process is not the point: main() in this process, one at a time between the
# benchmark processes' launches. This process imported torch and jax at collection already, so a
# command here costs neither an interpreter's start-up nor its ~1 GB of imports beside this one.
# Only what launches processes of its own (throughput, startup) or sets this process's threads
# and OpenMP (profile_torch) runs as a process. In this order: the parity script first, beside
# the first process only (it adds 1.3 GB here until its programs are dropped, after each command).
IN_PROCESS = ("benchmarks.parity_float32", "benchmarks.population_memory", "benchmarks.streaming",
              "benchmarks.torch_reference", "scripts/train_judge.py", "scripts.render_docs", "scripts/offline_mnist.py", "scripts/quality_table.py", "scripts.conditional_recipe")
# What a command without --json claims to write (paths relative to the folder it runs in, globs),
# from its parsed flags; scripts.render_docs --smoke is a check and writes nothing.
CLAIMS = {
    "scripts/offline_mnist.py": lambda o: [os.path.join(o["--as_folder"], "*", "*.png")] if "--as_folder" in o else
    [os.path.join(o.get("--data_dir", "data"), "MNIST", "raw", f"{s}-{k}-ubyte")
     for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1")],
    "scripts/train_judge.py": lambda o: [os.path.join(o.get("--out", "judge_smoke"), f)
                                         for f in ("mnist.npz", "__init__.py")],
    "scripts/quality_table.py": lambda o: [os.path.join(o.get("--out", "quality_smoke"), "table.md")],
    "scripts.conditional_recipe": lambda o: [os.path.join(o.get("--out", "cond_selection_smoke"), "selection.json")],
    "benchmarks.torch_reference": lambda o: [
        os.path.join(o.get("--sample_dir", "samples_torch"), "fake_images_1.png"),
        os.path.join(o.get("--logdir", "runs_torch"), "mnist", "events.out.tfevents.*"),
        *([o["--samples_out"]] if "--save_samples" in o and "--samples_out" in o else [])],
    "scripts.render_docs": lambda o: [],
}
# Commands that read a dataset from --data_dir: given tiny MNIST files there (96 + 32 images).
READS_DATA = ("scripts/train_judge.py", "benchmarks.torch_reference")

# The benchmark processes run as jobs on the suite's background thread (tests/beside.py), one at a
# time (each ~1 GB of process tree at --smoke, measured with psutil sampling on a 2-core CPU),
# never beside one another: two beside this process made 3.1 GB. Each one's process tree at its
# peak, GB (the thread runs the largest first): measured alone at --smoke with psutil sampling
# every 0.1 s, 2026-12-03 (a command not listed: the largest).
TREE_GB = {"benchmarks.startup": 0.93, "benchmarks.profile_torch": 0.94, "benchmarks.throughput": 1.16}
SHIPPED_JUDGES = os.path.join(REPO, "jaxgan", "judges")


def shipped_digests() -> dict[str, str]:
    out = {}
    for name in sorted(os.listdir(SHIPPED_JUDGES)):
        if name.endswith((".npz", ".py")):
            with open(os.path.join(SHIPPED_JUDGES, name), "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


SHIPPED_BEFORE_THE_RUNS = shipped_digests()  # at collection, before the runs fixture


def commands_in(text: str) -> list[str]:
    """The benchmarks/scripts commands in one page's text: fenced blocks, then inline code."""
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    inline = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    # A fenced block holds one command a line (a trailing backslash continues it); inline code
    # may wrap across lines.
    chunks = [c.replace("\\\n", " ") for c in fenced] + [c.replace("\n", " ") for c in inline]
    return [" ".join(m.group(0).split()) for chunk in chunks for m in COMMAND.finditer(chunk)]


def printed_commands() -> list[tuple[str, str]]:
    """(page, command) for every benchmarks/scripts command the pages print, in page order."""
    out = []
    for page in PAGES:
        with open(os.path.join(REPO, page), encoding="utf-8") as f:
            out += [(page, c) for c in commands_in(f.read())]
    return out


def module_of(command: str) -> str:
    words = command.split()
    return words[2] if words[1] == "-m" else words[1]


def path_of(module: str) -> str:
    return os.path.join(REPO, module) if "/" in module else os.path.join(REPO, *module.split(".")) + ".py"


def options(args: list[str]) -> dict[str, str]:
    return {a: b for a, b in zip(args, args[1:]) if a.startswith("--") and not b.startswith("--")}


def with_override(command: str, folder: str) -> tuple[list[str], list[str]]:
    """The command's arguments (after ``python``) with the tiny-size override applied, and the
    files it claims to write, as paths (globs) under ``folder``."""
    args = shlex.split(re.sub(r"\$[A-Za-z_]\w*", "0", command.replace("$TMP", folder)))[1:]
    module = module_of(command)
    claimed = []
    for i, a in enumerate(args[:-1]):
        if a == "--json":
            claimed.append(os.path.join(folder, os.path.basename(args[i + 1])))
            args[i + 1] = claimed[-1]
    if module in CLAIMS:
        claimed += [os.path.join(folder, p) for p in CLAIMS[module](options(args))]
    if "/" in module:  # a script run as a file, from the repository
        args[args.index(module)] = os.path.join(REPO, module)
    return [*args, "--smoke"], claimed


def takes(module: str, flag: str) -> bool:
    """Whether the module's source defines ``flag`` (an argparse flag, quoted)."""
    with open(path_of(module), encoding="utf-8") as f:
        return f'"{flag}"' in f.read()


def takes_smoke(module: str) -> bool:
    return takes(module, "--smoke")


def flag_names(command: str) -> frozenset[str]:
    return frozenset(a for a in shlex.split(command) if a.startswith("--"))


def to_run(commands: list[str]) -> dict[str, str]:
    """run id -> command: per module, the printed commands whose flag names are not all among
    another printed command's for it (of equal sets, the first printed). A module's first such
    command has the module as its id; another one, the module and its flag names (unique: no two
    kept commands of a module have the same flag names)."""
    out: dict[str, str] = {}
    by_module: dict[str, list[str]] = {}
    for c in commands:
        by_module.setdefault(module_of(c), []).append(c)
    for module, cs in by_module.items():
        kept: list[str] = []
        for c in cs:
            f = flag_names(c)
            if not any(f < flag_names(o) for o in cs) and all(f != flag_names(k) for k in kept):
                kept.append(c)
        for i, c in enumerate(kept):
            out[module if i == 0 else f"{module} {' '.join(sorted(flag_names(c)))}"] = c
    return out


COMMANDS = printed_commands()
RUNS = to_run([c for _, c in COMMANDS])
RUNNABLE = {r: c for r, c in RUNS.items() if module_of(c) not in SHELL}
# A module that runs as a process (not IN_PROCESS) pays tens of seconds a run even at --smoke (its
# measurement processes' imports and compiles; --smoke also overrides the sizes a command gives),
# so of its kept commands the first runs at toy size and, where the module takes --plan, the
# others are planned, in this process: their printed flags must parse and pass the module's
# checks, and the plan printed must hold their printed values (rows, batch sizes, widths, threads).
def plannable(command: str) -> bool:
    return module_of(command) not in IN_PROCESS and takes(module_of(command), "--plan")


PLANNED = {r: c for r, c in RUNNABLE.items() if plannable(c) and r != module_of(c)}
RUN = {r: c for r, c in RUNNABLE.items() if r not in PLANNED}
# A run one of them stands for is planned as well, with its own overridden flags: the plan must be
# what that run did, job by job, in order (else a planned command's plan could say anything).
RUN_AND_PLANNED = sorted(r for r, c in RUN.items() if plannable(c))


@pytest.mark.quick
def test_each_line_of_a_code_block_is_a_command_of_its_own_unless_a_backslash_continues_it():
    text = ("```bash\npython scripts/offline_mnist.py --as_folder digits\npython -m jaxgan.train --dataset folder\n"
            "python -m benchmarks.startup --json a.json \\\n  --quick\n```\nthen `python -m benchmarks.throughput\n--quick`.")
    assert commands_in(text) == ["python scripts/offline_mnist.py --as_folder digits",
                                 "python -m benchmarks.startup --json a.json --quick",
                                 "python -m benchmarks.throughput --quick"]


@pytest.mark.quick
def test_a_modules_commands_run_are_those_whose_flags_no_other_printed_command_holds():
    cs = ["python -m benchmarks.throughput", "python -m benchmarks.throughput --quick --json a.json",
          "python -m benchmarks.throughput --quick --threads 1 --json b.json",
          "python -m benchmarks.throughput --model dcgan --json c.json",
          "python -m benchmarks.throughput --model wgan --json d.json", "python scripts/offline_mnist.py",
          "python -m benchmarks.startup --a 1 --b 2 --json e.json", "python -m benchmarks.startup --json f.json"]
    assert to_run(cs) == {"benchmarks.throughput": cs[2], "benchmarks.throughput --json --model": cs[3],
                          "scripts/offline_mnist.py": cs[5], "benchmarks.startup": cs[6]}
    # three commands, none holding another's flags: all three run, under ids of their own
    three = ["python -m benchmarks.startup --a 1 --b 2", "python -m benchmarks.startup --a 1 --c 3",
             "python -m benchmarks.startup --b 2 --c 3"]
    assert sorted(to_run(three).values()) == sorted(three)
    # every flag a page prints for a module is in a command that runs
    for module in {module_of(c) for _, c in COMMANDS}:
        printed = set().union(*(flag_names(c) for _, c in COMMANDS if module_of(c) == module))
        ran = set().union(*(flag_names(c) for c in RUNS.values() if module_of(c) == module))
        assert printed == ran, (module, printed - ran)


@pytest.mark.quick
def test_the_pages_print_the_benchmark_commands_and_each_names_a_module_that_exists():
    modules = {module_of(c) for _, c in COMMANDS}
    assert {"benchmarks.throughput", "benchmarks.startup", "benchmarks.profile_torch",
            "benchmarks.population_memory", "benchmarks.parity_float32", "scripts.render_docs"} <= modules
    for page, command in COMMANDS:
        assert os.path.isfile(path_of(module_of(command))), (page, command)
        # benchmarks are modules of a package: run as files they cannot import each other.
        assert not command.startswith("python benchmarks/"), (page, command)


@pytest.mark.quick
def test_every_printed_command_takes_the_override():
    # A new printed command lacking --smoke fails here (and its run fails: argparse exits 2); a
    # shell script printed anew needs its reason in SHELL.
    shells = {module_of(c) for c in RUNS.values() if c.startswith("bash ")}
    assert shells <= set(SHELL), sorted(shells - set(SHELL))
    assert [r for r, c in RUNNABLE.items() if not takes_smoke(module_of(c))] == []
    # Every run checks a file it claims, but the docs check, which writes nothing.
    with_nothing = [r for r, c in RUNNABLE.items() if not with_override(c, "/f")[1]]
    assert with_nothing == ["scripts.render_docs"]


def _tiny_mnist(root: str) -> None:
    from jaxgan.formats import write_mnist

    images, labels = blob_images(128, 28, 28, 1, seed=3)
    write_mnist(root, images[:96, ..., 0], labels[:96], images[96:, ..., 0], labels[96:])


def _command_job(run_id: str):
    def drive(folder, run):
        """The printed command at toy size as a process in ``folder``, its output to a file."""
        env = beside.child_env()
        argv, claimed = with_override(RUNNABLE[run_id], folder)
        with open(folder + ".log", "w+") as log:
            proc = run.popen([sys.executable, *argv], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                             text=True)
            proc.wait()
            log.seek(0)
            return argv, claimed, log.read(), proc.returncode, folder
    return drive


def job_name(run_id: str) -> str:
    return f"doc {run_id}"


# The commands that run as processes (``RUN`` less ``IN_PROCESS``), each a job.
AS_PROCESSES = [r for r, c in RUN.items() if module_of(c) not in IN_PROCESS]
for _run_id in AS_PROCESSES:
    beside.job(job_name(_run_id), gb=TREE_GB.get(module_of(RUN[_run_id]), max(TREE_GB.values())),
               alone=True)(_command_job(_run_id))


def process_jobs() -> list[str]:
    """The jobs of the commands that run as processes (conftest starts them)."""
    return [job_name(r) for r in AS_PROCESSES]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every command ``to_run`` keeps (``RUNNABLE``), overridden, each in its own folder: the
    benchmark processes (jobs on the background thread, run while earlier modules ran, or run here
    now; waited for first), then the IN_PROCESS ones here, one at a time, each one's programs
    dropped after it."""
    from tests.conftest import release_compiled_programs

    release_compiled_programs()  # the modules' before
    background = beside.runner()
    t0 = time.perf_counter()
    done = {}
    for run_id in AS_PROCESSES:  # first: the parity script here adds 1.3 GB to this process
        try:
            done[run_id] = beside.result(job_name(run_id))
        except pytest.fail.Exception as e:  # the job raised: its test shows the traceback
            done[run_id] = ([], [], str(e), 1, "")
    t_wait = time.perf_counter() - t0
    clock = background.t0 if background else t0
    spans = {}
    ids = [r for m in IN_PROCESS for r, c in RUNNABLE.items() if module_of(c) == m]
    for run_id in ids:
        folder = str(tmp_path_factory.mktemp(beside.slug(run_id)))
        module = module_of(RUNNABLE[run_id])
        argv, claimed = with_override(RUNNABLE[run_id], folder)
        if module in READS_DATA:
            _tiny_mnist(os.path.join(folder, options(argv).get("--data_dir", "data")))
        name = module.replace("/", ".").removesuffix(".py")
        started = time.perf_counter()
        try:
            r = run_main(name, *argv[1:] if "/" in module else argv[2:], cwd=folder)
            done[run_id] = (argv, claimed, r.stdout + r.stderr, r.returncode, folder)
        except Exception:  # its test fails with the traceback; the other runs go on
            done[run_id] = (argv, claimed, traceback.format_exc(), 1, folder)
        spans[run_id] = (started - clock, time.perf_counter() - clock)  # one clock
        release_compiled_programs()  # its programs: the parity script's alone add 1.3 GB to this process
    def plan(command: str, folder: str, keep_smoke: bool):
        """main() in this process with --plan: in place of --smoke (a planned command), or after it
        (the plan of the run that command made at toy size). (argv, claimed, output, exit code)."""
        argv, claimed = with_override(command, folder)
        argv = [*argv, "--plan"] if keep_smoke else [*argv[:-1], "--plan"]
        try:
            r = run_main(module_of(command), *argv[2:], cwd=folder)
            return argv, claimed, r.stdout + r.stderr, r.returncode
        except Exception:  # its test fails with the traceback; the other runs go on
            return argv, claimed, traceback.format_exc(), 1

    for run_id, command in PLANNED.items():
        folder = str(tmp_path_factory.mktemp(beside.slug(run_id)))
        done[run_id] = (*plan(command, folder, keep_smoke=False), folder)
    for run_id in RUN_AND_PLANNED:
        folder = str(tmp_path_factory.mktemp(beside.slug(run_id) + "-plan"))
        done[f"{run_id} --plan"] = plan(RUN[run_id], folder, keep_smoke=True)[2]
    done["beside"] = beside.seen_beside()
    print(f"stopped over the memory cap and run again: {background.again if background else []}")
    print(f"waited {t_wait:.1f} s for the processes, then {time.perf_counter() - t0 - t_wait:.1f} s in this process")
    for module, (a, b) in {**(background.spans if background else {}), **spans}.items():  # shown with a failing test's output
        print(f"{module}: {a:5.1f} .. {b:5.1f} s")
    return done


@pytest.mark.parametrize("run_id", sorted(RUN))
def test_a_printed_command_runs_at_toy_size_and_writes_what_it_claims(runs, run_id):
    argv, claimed, output, code, folder = runs[run_id]
    assert code == 0, (argv, output[-3000:])
    if not claimed:  # the docs check: it writes nothing
        assert os.listdir(folder) == [], (argv, output[-3000:])
    for pattern in claimed:
        found = [p for p in glob.glob(pattern) if os.path.isfile(p) and os.path.getsize(p) > 0]
        assert found, (pattern, argv, output[-3000:])
        if pattern.endswith(".json"):
            with open(found[0], encoding="utf-8") as f:
                assert json.load(f)


@pytest.mark.parametrize("run_id", sorted(PLANNED))
def test_a_planned_command_takes_its_printed_flags_and_plans_their_values(runs, run_id):
    argv, claimed, output, code, folder = runs[run_id]
    assert code == 0 and os.listdir(folder) == [], (argv, output[-3000:])
    printed = options(argv)  # the printed values, with_override's (only --json moved, into folder)
    lines = output.strip().splitlines()
    head = lines[0]
    batches = {int(m[1]): m[2] for line in lines if (m := re.match(r"batch (\d+): (.*)", line))}
    assert re.match(r"plan: --model (\w+)[ ,]", head)[1] == printed.get("--model", "mlp"), output
    steps = {}  # batch size -> steps per call
    if "--quick" in argv:  # what --quick means, as its help says: batch 64 and 512, 0.5 s, calls of
        printed = {"--batch_sizes": "64,512", "--min_time": "0.5", **printed}  # 3,200 images
        steps = {64: 50, 512: 7}
    assert sorted(batches) == sorted(int(b) for b in printed["--batch_sizes"].split(",")), output
    for batch, plan in batches.items():
        if "--impls" in printed:
            assert plan.split(" -- ")[0].split() == printed["--impls"].split(","), output
        if "--steps_per_call" in printed or batch in steps:
            assert f", {printed.get('--steps_per_call', steps.get(batch))} steps per call" in plan, output
        for flag, text in (("--min_time", ">= {} s"), ("--job_timeout", "job timeout {} s")):
            if flag in printed:
                assert text.format(printed[flag]) in plan, (flag, output)
    if "--threads" in printed:
        assert f"threads {printed['--threads']} " in head, output
    for flag, net in (("--g_hidden", "G"), ("--d_hidden", "D")):
        if flag in printed:
            assert f"{net} {printed[flag]}" in head, output
    stem = os.path.splitext(claimed[0])[0]  # every planned command prints its --json
    assert lines[-1] == f"writes {stem}.json, {stem}.md, {stem}.png", output


@pytest.mark.parametrize("run_id", RUN_AND_PLANNED)
def test_a_plan_names_the_jobs_its_run_ran_in_their_order(runs, run_id):
    plan, output = runs[f"{run_id} --plan"], runs[run_id][2]
    lines = plan.strip().splitlines()
    machine = next(line for line in lines if line.startswith("machine jobs, each in its own process: "))
    planned = machine.split(": ", 1)[1].split("; ")
    for line in lines:
        if m := re.match(r"batch (\d+): (.*?) -- ", line):
            for impl, k in re.findall(r"(\w+)(?:\(K=(\d+)\))?", m[2]):
                planned.append(f"{impl} K={k} batch {m[1]}" if k else f"{impl} batch {m[1]}")
    ran = [m[1] for line in output.splitlines() if (m := re.match(r"  (\S.*?) +\d+\.\d s  load ", line))]
    assert ran == planned, (plan, output[-3000:])


def test_no_other_test_started_a_process_beside_a_benchmark_process(runs):
    # One benchmark process tree at a time beside this process, nothing else: the suite's memory
    # budget (3 GB, tests/TIMINGS.md). A test that starts processes runs before them (its
    # `processes` mark, conftest); one without the mark shows here, with the test.
    assert runs["beside"] == []


def test_the_smoke_judge_never_touches_the_shipped_one(runs, tmp_path):
    # train_judge's default --out is the package's judges folder; --smoke writes ./judge_smoke and
    # refuses the shipped folder outright, so the shipped judge and its SHA-256 stay as committed.
    argv, claimed, output, code, _ = runs["scripts/train_judge.py"]
    assert code == 0 and all(os.path.dirname(c) != SHIPPED_JUDGES for c in claimed), output[-3000:]
    refused = run_main("scripts.train_judge", "--smoke", "--data_dir", "nowhere", "--out", SHIPPED_JUDGES,
                       cwd=str(tmp_path))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert shipped_digests() == SHIPPED_BEFORE_THE_RUNS and not list(tmp_path.iterdir())


def test_the_parity_script_agrees_with_pytorch_in_float64(runs):
    # The script's own check of itself: in float64 jaxgan's step and the torch loop agree to
    # rounding (tests/test_zoo.py holds 1e-9), so a wrong weight copy, batch or noise shows here.
    _, claimed, output, code, _ = runs["benchmarks.parity_float32"]
    assert code == 0, output[-3000:]
    with open(claimed[0], encoding="utf-8") as f:
        res = json.load(f)
    for model in ("dcgan", "wgan"):
        f64 = res[f"{model}_float64_vs_torch_float64"]
        assert f64["elements"] > 0 and 0 < f64["max_abs_diff_other"] < 1e-8, (model, f64)
        assert f64["max_abs_diff_pre_bn_biases"] < 1e-8, (model, f64)
    # WGAN in float32 against float64: RMSprop's sign-like first steps turn float32 rounding into
    # differences of 1e-3 here; float64 on both sides would leave ~1e-10, a wrong copy far more.
    f32 = res["wgan_float32_vs_torch_float64"]
    assert 1e-6 < f32["max_abs_diff_other"] < 1e-2, f32


def shell_commands(script: str) -> list[str]:
    """The Python modules a shell script runs (``$PY -m M``, and run_cpu.sh's ``repeated NAME M``)."""
    with open(os.path.join(REPO, script), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"(?:-m|^repeated \S+) \"?((?:benchmarks|scripts|jaxgan)\.\w+)", text, re.M)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_shell_scripts_parse_and_every_python_command_in_them_is_one_this_file_runs(runs, tmp_path):
    for script in SHELL:
        assert subprocess.run(["bash", "-n", os.path.join(REPO, script)]).returncode == 0, script
        modules = shell_commands(script)
        assert modules, script
        for module in modules:
            assert module in RUNNABLE or module in RUN_ELSEWHERE, (script, module)  # a module's first run's id
    # run_cpu.sh keeps the quietest of its repeated runs with benchmarks.select_run: here on two
    # copies of the throughput run's JSON, as its repeated() hands them over.
    run_json = runs["benchmarks.throughput"][1][0]
    copies = [shutil.copyfile(run_json, str(tmp_path / f"q-{i}.json")) for i in (1, 2)]
    r = run_main("benchmarks.select_run", *copies, "--copy_to", str(tmp_path / "q.json"))
    assert r.returncode == 0 and os.path.isfile(tmp_path / "q.json"), r.stdout + r.stderr
