"""Every benchmarks/scripts command the README and docs print runs, at toy size.

The commands are parsed from the pages themselves (fenced code blocks and inline code), never
from a list kept here. The one tiny-size override, documented in docs/benchmarks.md: append
``--smoke`` (each command's own flag: the same code path at toy sizes; what it writes is no
figure) and move the file it writes (``--json PATH``) into a temporary folder, which is also the
folder it runs in. A run passes when it exits 0 and writes the file it claims.

Each module runs once, with the first command the pages print for it (a second printed variant
of a module would cost another compile, and the suite's budget is tight); the forms of all of
them are checked: benchmarks run as ``python -m benchmarks.<name>`` from the repository root.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO

PAGES = ("README.md", *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md"))))
COMMAND = re.compile(r"(?:python3? (?:-m (?:benchmarks|scripts)\.\w+|(?:benchmarks|scripts)/\w+\.py)"
                     r"|bash benchmarks/\w+\.sh)(?: [^`\n|&;#]*)?")


def printed_commands() -> list[tuple[str, str]]:
    """(page, command) for every benchmarks/scripts command the pages print, in page order."""
    out = []
    for page in PAGES:
        with open(os.path.join(REPO, page), encoding="utf-8") as f:
            text = f.read()
        fenced = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
        inline = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        for chunk in (*fenced, *inline):
            out += [(page, " ".join(m.group(0).split())) for m in COMMAND.finditer(chunk.replace("\n", " "))]
    return out


def module_of(command: str) -> str:
    words = command.split()
    return words[2] if words[1] == "-m" else words[1]


def with_override(command: str, folder: str) -> tuple[list[str], str | None]:
    """The command with the tiny-size override applied, and the file it claims to write (or None)."""
    args = shlex.split(command)[1:]
    claimed = None
    for i, a in enumerate(args[:-1]):
        if a == "--json":
            claimed = args[i + 1] = os.path.join(folder, os.path.basename(args[i + 1]))
    return [sys.executable, *args, "--smoke"], claimed


def takes_smoke(module: str) -> bool:
    path = os.path.join(REPO, *module.split(".")) + ".py" if "/" not in module else os.path.join(REPO, module)
    with open(path, encoding="utf-8") as f:
        return '"--smoke"' in f.read()


COMMANDS = printed_commands()
FIRST = {}
for _page, _command in COMMANDS:
    FIRST.setdefault(module_of(_command), _command)
RUNNABLE = {m: c for m, c in FIRST.items() if not c.startswith("bash") and takes_smoke(m)}


@pytest.mark.quick
def test_the_pages_print_the_benchmark_commands_and_each_names_a_module_that_exists():
    modules = {module_of(c) for _, c in COMMANDS}
    assert {"benchmarks.throughput", "benchmarks.startup", "benchmarks.profile_torch",
            "benchmarks.population_memory", "benchmarks.parity_float32", "scripts.render_docs"} <= modules
    for page, command in COMMANDS:
        module = module_of(command)
        path = os.path.join(REPO, module) if "/" in module else os.path.join(REPO, *module.split(".")) + ".py"
        assert os.path.isfile(path), (page, command)
        # benchmarks are modules of a package: run as files they cannot import each other.
        assert not command.startswith("python benchmarks/"), (page, command)


@pytest.mark.xfail(strict=True, reason="scripts.offline_mnist, scripts.train_judge, scripts.quality_table, "
                   "benchmarks.torch_reference (printed only as startup's record, with $TMP paths) and "
                   "the shell scripts benchmarks/*.sh (their own smoke switches: GPU_RUN_CPU_CHECK=1, RUN_CPU_SMOKE=1) have no "
                   "--smoke yet, so the test does not run them")
def test_every_printed_command_takes_the_override():
    assert set(RUNNABLE) == set(FIRST)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every runnable module's first printed command, overridden, each in its own folder, two at
    a time (two cores; all at once held six interpreters with torch and jax, 6.5 GB), the longest
    first."""
    from tests.conftest import release_compiled_programs

    release_compiled_programs()  # this process waits beside them
    env = {**os.environ, "PYTHONPATH": REPO + (os.pathsep + os.environ["PYTHONPATH"]
                                               if os.environ.get("PYTHONPATH") else "")}
    longest_first = sorted(RUNNABLE, key=lambda m: (m not in SLOW, m))
    waiting, running, done = list(longest_first), {}, {}
    while waiting or running:
        while waiting and len(running) < 2:
            module = waiting.pop(0)
            folder = str(tmp_path_factory.mktemp(module.replace(".", "_")))
            argv, claimed = with_override(RUNNABLE[module], folder)
            running[module] = (argv, claimed, subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE,
                                                               stderr=subprocess.STDOUT, text=True))
        module = next(iter(running))  # wait for the oldest: its output is read while it runs
        argv, claimed, proc = running.pop(module)
        done[module] = (argv, claimed, proc.communicate(timeout=600)[0], proc.returncode)
    return done


SLOW = ("benchmarks.parity_float32", "benchmarks.throughput", "benchmarks.startup")


@pytest.mark.parametrize("module", sorted(RUNNABLE))
def test_a_printed_command_runs_at_toy_size_and_writes_what_it_claims(runs, module):
    argv, claimed, output, code = runs[module]
    assert code == 0, (argv, output[-3000:])
    if claimed:
        assert os.path.isfile(claimed), (argv, output[-3000:])
        with open(claimed, encoding="utf-8") as f:
            assert json.load(f)


def test_the_parity_script_agrees_with_pytorch_in_float64(runs):
    # The script's own check of itself: in float64 jaxgan's step and the torch loop agree to
    # rounding (tests/test_zoo.py holds 1e-9), so a wrong weight copy, batch or noise shows here.
    _, claimed, output, code = runs["benchmarks.parity_float32"]
    assert code == 0, output[-3000:]
    with open(claimed, encoding="utf-8") as f:
        res = json.load(f)
    f64 = res["dcgan_float64_vs_torch_float64"]
    assert f64["elements"] > 0 and f64["max_abs_diff_other"] < 1e-8 and f64["max_abs_diff_pre_bn_biases"] < 1e-8
    f32 = res["wgan_float32_vs_torch_float64"]
    assert 0 < f32["max_abs_diff_other"] < 1e-2
