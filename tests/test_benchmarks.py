"""The benchmark's bookkeeping: each measurement in its own process with the threads it was given,
FLOPs per row from that row's own batch size, the "fastest PyTorch" rule, the roofline, and the
rule that picks the quietest of repeated runs. No timing is asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from benchmarks import analysis, harness, machine, rows, synthetic, tables
from tests import beside
from tests.conftest import REPO, run_main

# The tests that run a benchmark command as a process of their own carry the `processes` mark
# (conftest: before the background jobs); those that wait long for theirs are jobs
# (tests/beside.py); the rest run here, in this process.


def module_command(module: str, *args: str) -> list[str]:
    """``python -m module args`` as the docs print it, runnable from any folder (the repository on
    PYTHONPATH, as a checkout's root puts it there)."""
    return [sys.executable, "-m", module, *args]


MODULE_ENV = {**os.environ, "PYTHONPATH": REPO + (os.pathsep + os.environ["PYTHONPATH"]
                                                  if os.environ.get("PYTHONPATH") else "")}


def _job(load: float, **kw) -> dict:
    return {"ok": True, "loadavg_before": [load, 0, 0], "loadavg_after": [load, 0, 0], **kw}


def _row(impl: str, bs: int, img_per_s: float, step_ms: float = 10.0, load: float = 1.0) -> dict:
    spec = rows.IMPLS[impl]
    return _job(load, impl=impl, batch_size=bs, framework=spec.framework, precision=spec.precision,
                label=spec.label, img_per_s=img_per_s, step_ms=step_ms)


def _doc(rows: list[dict], sizes: list[int]) -> dict:
    return {
        "settings": {"batch_sizes": sizes}, "host": _job(1.0),
        "peaks": [_job(1.0, spec={"framework": "jax", "precision": "float32"}, flops_per_s=1e11),
                  _job(1.0, spec={"framework": "torch", "precision": "float32"}, flops_per_s=5e10),
                  _job(1.0, spec={"framework": "torch", "precision": "tf32"}, flops_per_s=4e11)],
        "bandwidth": [_job(1.0, spec={"framework": "numpy"}, bytes_per_s=1e10),
                      _job(1.0, spec={"framework": "jax"}, bytes_per_s=2e9)],
        "flops": {str(bs): _job(1.0, batch_size=bs, flops_per_step=1e9 * bs / 32, flops_per_img=1e9 / 32,
                                flops_source="test", adam_bytes_per_step=1e8, n_params=1000) for bs in sizes},
        "rows": rows,
    }


def test_fastest_pytorch_is_the_fastest_torch_row_at_jaxgans_precision():
    rows = [_row("torch_reference", 64, 100.0), _row("torch_tuned", 64, 300.0),
            _row("torch_fused_adam", 64, 250.0), _row("torch_fused_adam_tf32", 64, 900.0),
            _row("jax_scan", 64, 600.0), _row("jax_scan_tf32", 64, 1800.0)]
    summary = {e["precision"]: e for e in analysis.annotate(_doc(rows, [64]))["summary"]}
    f32 = summary["float32"]
    # The TF32 row is faster, but it is not float32: it is not the float32 pair's baseline.
    assert f32["fastest_torch"] == "torch_tuned" and f32["ratio"] == pytest.approx(2.0)
    assert f32["ratio_vs_reference"] == pytest.approx(6.0)
    assert f32["fastest_torch_any_precision"] == "torch_fused_adam_tf32"
    tf32 = summary["tf32"]
    assert tf32["fastest_torch"] == "torch_fused_adam_tf32" and tf32["ratio"] == pytest.approx(2.0)


def test_each_row_gets_its_own_batch_sizes_flops_peak_and_roofline():
    rows = [_row("jax_scan", 32, 3200.0, step_ms=40.0), _row("jax_scan", 128, 6400.0, step_ms=20.0)]
    doc = analysis.annotate(_doc(rows, [32, 128]))
    small, large = doc["rows"]
    assert small["flops_per_step"] == 1e9 and large["flops_per_step"] == 4e9
    # float32 peak: the faster framework's (1e11, not 5e10); bandwidth: the fastest (1e10).
    assert doc["peak_by_precision"]["float32"]["framework"] == "jax"
    assert small["matmul_peak_flops_per_s"] == 1e11
    assert small["peak_fraction"] == pytest.approx(3200 * (1e9 / 32) / 1e11)
    # roofline: 1e9 FLOP at 1e11/s = 10 ms, plus 1e8 B at 1e10 B/s = 10 ms -> 20 ms of a 40 ms step.
    assert small["roofline_step_ms"] == pytest.approx(20.0) and small["roofline_fraction"] == pytest.approx(0.5)
    assert large["roofline_step_ms"] == pytest.approx(50.0)


def test_quietest_run_is_kept_by_its_mean_load(tmp_path):
    paths = []
    for name, load in (("a", 3.0), ("b", 1.5), ("c", 2.0)):
        doc = analysis.annotate(_doc([_row("jax_scan", 64, 1.0, load=load), _row("torch_tuned", 64, 1.0, load=load)],
                                   [64]))
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    best, means = analysis.quietest(paths)
    assert best.endswith("b.json") and means[best] == pytest.approx((7 * 1.0 + 2 * 1.5) / 9)  # 7 other jobs at load 1.0


@pytest.fixture
def in_this_process(monkeypatch):
    """Run a benchmark job in the test process. frameworks.jax_setup (the name rows and machine
    import and call) is for a fresh child: it turns
    XLA's persistent compilation cache off, and JAX decides once per process whether to use it, so
    called here it would leave every later test of the session compiling from scratch. Nothing a
    job computes depends on it (the process is on the CPU already); torch's precision switches,
    which torch_setup sets, are put back."""
    import torch

    monkeypatch.setattr(rows, "jax_setup", lambda spec: None)
    monkeypatch.setattr(machine, "jax_setup", lambda spec: None)
    switches = [(b, b.fp32_precision) for b in (torch.backends.cuda.matmul, torch.backends.cudnn,
                                                 torch.backends.mkldnn.matmul) if hasattr(b, "fp32_precision")]
    yield
    for backend, value in switches:
        backend.fp32_precision = value


def test_flops_come_from_xla_for_each_batch_size_and_adam_counts_the_real_parameters(in_this_process):
    from benchmarks import torch_reference as ref

    counts = {bs: machine.job_flops({"device": "cpu", "batch_size": bs}) for bs in (8, 16, 24)}
    f = {bs: c["flops_per_step"] for bs, c in counts.items()}
    assert f[8] < f[16] < f[24] and (f[24] - f[16]) == pytest.approx(f[16] - f[8], rel=1e-3)
    G, D = ref.Generator((1, 28, 28), 100), ref.Discriminator((1, 28, 28))
    n = sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
    assert counts[8]["n_params"] == n and counts[8]["adam_bytes_per_step"] == 7 * 4 * n


def test_population_rows_are_compared_with_one_run_at_the_same_batch_and_credited_k_steps():
    rows = [_row("torch_tuned", 64, 500.0), _row("torch_reference", 64, 400.0),
            _row("jax_scan", 64, 1000.0, step_ms=64.0), _row("jax_scan", 128, 1500.0),
            {**_row("jax_population", 64, 3000.0, step_ms=85.3), "members": 4},
            {**_row("jax_population", 128, 2000.0), "members": 2}]
    doc = analysis.annotate(_doc(rows, [64, 128]))
    pop = {(e["batch_size"], e["members"]): e for e in doc["population_summary"]}
    assert set(pop) == {(64, 4), (128, 2)}
    assert pop[64, 4]["vs_one_run"] == pytest.approx(3.0) and pop[128, 2]["vs_one_run"] == pytest.approx(4 / 3)
    # K PyTorch runs one after another: the fastest torch row's own img/s; none ran at batch 128
    assert pop[64, 4]["fastest_torch"] == "torch_tuned" and pop[64, 4]["vs_fastest_torch"] == pytest.approx(6.0)
    assert pop[128, 2]["vs_fastest_torch"] is None
    one, four = doc["rows"][2], doc["rows"][4]
    # A population step is K members' steps: K times the FLOPs and optimiser bytes of one.
    assert four["flops_per_step"] == 4 * one["flops_per_step"]
    assert four["roofline_step_ms"] == pytest.approx(4 * one["roofline_step_ms"])
    assert four["peak_fraction"] == pytest.approx(3 * one["peak_fraction"])
    # Population rows are never jaxgan's side of the PyTorch comparison: one run (e) is.
    (summary,) = doc["summary"]
    assert summary["jax"] == "jax_scan" and summary["jax_img_per_s"] == 1000.0 and summary["ratio"] == 2.0


@pytest.mark.parametrize("model", ["dcgan", "wgan"])
def test_conv_model_flops_scale_with_the_batch_and_count_the_reference_parameters(model, in_this_process):
    from benchmarks import torch_dcgan as td

    gh, dh = [16, 8, 8, 4], [4, 8, 8, 16]
    counts = {bs: machine.job_flops({"device": "cpu", "batch_size": bs, "model": model, "g_hidden": gh,
                                       "d_hidden": dh}) for bs in (8, 16, 24)}
    f = {bs: c["flops_per_step"] for bs, c in counts.items()}
    assert f[8] < f[16] < f[24] and (f[24] - f[16]) == pytest.approx(f[16] - f[8], rel=1e-3)
    n_g = sum(p.numel() for p in td.Generator(1, 32, 100, gh).parameters())
    n_d = sum(p.numel() for p in td.Discriminator(1, 32, dh).parameters())
    assert counts[8]["n_params"] == n_g + n_d
    # Adam (dcgan): 7 float32 per parameter per step; RMSprop (wgan): 5 for D, and for G every 5th step.
    want = 7 * 4 * (n_g + n_d) if model == "dcgan" else 5 * 4 * (n_d + n_g / 5)
    assert counts[8]["adam_bytes_per_step"] == pytest.approx(want)


@pytest.mark.processes
def test_conv_model_options_are_checked_in_one_line(tmp_path):
    for args, message in ((["--g_hidden", "8,8,8,8"], "are for --model dcgan|wgan"),
                          (["--model", "dcgan", "--d_hidden", "8,8,8"], "4 positive channel widths"),
                          (["--model", "dcgan", "--population", "1"], "must be >= 2"),
                          (["--impls", "jax_scan_other_conv"], "do not apply to --model mlp")):
        proc = subprocess.run(module_command("benchmarks.throughput", *args), capture_output=True, text=True,
                              cwd=str(tmp_path), env=MODULE_ENV, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1


NO_ROW = "benchmarks: no row ran"


@beside.job(NO_ROW, gb=0.45)
def without_jax(folder, run):
    """The throughput command where jax cannot be imported, over an earlier result."""
    # A machine without jax: the parent needs neither framework, so only the children fail.
    fake = os.path.join(folder, "broken")
    os.mkdir(fake)
    with open(os.path.join(fake, "jax.py"), "w") as f:
        f.write("raise ImportError('jax is not installed here')\n")
    earlier = os.path.join(folder, "result.json")
    with open(earlier, "w") as f:
        f.write('{"an": "earlier result"}')
    env = {**MODULE_ENV, "PYTHONPATH": fake + os.pathsep + MODULE_ENV["PYTHONPATH"]}
    proc = run.popen(module_command("benchmarks.throughput", "--smoke", "--impls", "jax_scan", "--json", earlier),
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder, env=env)
    _, err = proc.communicate(timeout=300)
    return folder, proc.returncode, err


@pytest.mark.beside(NO_ROW)
def test_a_run_in_which_no_row_ran_fails_in_one_line_and_keeps_the_earlier_result():
    folder, code, err = beside.result(NO_ROW)
    assert code == 2 and "no row ran (ImportError: jax is not installed here)" in err, err
    assert len(err.strip().splitlines()) == 1
    with open(os.path.join(folder, "result.json")) as f:
        assert f.read() == '{"an": "earlier result"}'
    assert not os.path.exists(os.path.join(folder, "result.md"))


@pytest.fixture(scope="module")
def row_data(tmp_path_factory):
    """The rows' datasets, by model: 60 images, so that in batches of 8 the DataLoader row meets
    dcgan/train.py's short last batch (7 full batches and 4 images). The rows only read them."""
    root = tmp_path_factory.mktemp("rows")
    folders = {}
    for model in ("mlp", "conv"):
        synthetic.write_dataset(str(root / model), 60, "mlp" if model == "mlp" else "dcgan")
        folders[model] = str(root / model)
    return lambda model: folders["mlp" if model == "mlp" else "conv"]


def row_spec(data_dir: str, impl: str, model: str, threads: int = 1, interop_threads: int = 1) -> dict:
    spec = {"job": "row", "impl": impl, "batch_size": 8, "device": "cpu", "data_dir": data_dir,
            "min_time": 0.3, "workers": 0, "steps_per_call": 4, "threads": threads,
            "interop_threads": interop_threads, "model": model, "members": 2}
    if model != "mlp":
        spec.update(g_hidden=[16, 8, 8, 4], d_hidden=[4, 8, 8, 16])
    return spec


# What a fresh process gives a row (its own pid, thread settings, CPU affinity, a compile from
# scratch) and how rows take turns, shown on two rows of different frameworks, each in its own
# process, three rounds each: the reference's DataLoader loop (PyTorch, a conv model, its short
# last batch) and jaxgan's training path (JAX). The other row kinds' own loops (a population
# among them) run in this process in the next test: what a child process adds is the same for
# every kind, and two conv processes alive at once beside this one held 3.3 GB.
# Its processes hold 1.42 GB at once (measured alone, 2026-12-03): beside this process's later
# modules that passes the cap, so it runs first, as a process test, while this process is small.
@pytest.mark.processes
def test_rows_run_in_their_own_processes_compile_alone_then_take_turns_round_by_round(tmp_path, row_data):
    jobs = [(row_spec(row_data(model), impl, model), impl, "passive")
            for impl, model in (("torch_reference", "dcgan"), ("jax_scan", "mlp"))]
    jobs[0][0]["min_time"] = 0.5  # three rounds: time enough, on a loaded machine too, to pass an epoch's end
    jobs[1][0]["min_time"] = 0.05
    results = harness.run_in_turns(jobs, 3, str(tmp_path), "cpu", threads=1, timeout=300)
    for r, (_, impl, _) in zip(results, jobs):
        assert r["ok"], r.get("log_tail")
        if impl == "torch_reference":
            assert r["iters"] > 8  # past the first epoch's short batch
        if impl == "jax_scan":  # steps fused per call
            assert r["members"] == 1 and r["steps_per_call"] == 4 and r["iters"] == 4 * r["calls"]
        assert r["pid"] != os.getpid() and r["precision"] == "float32"
        assert r["env"]["OMP_NUM_THREADS"] == "1" and "intra_op_parallelism_threads=1" in r["env"]["XLA_FLAGS"]
        assert r["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
        if len(os.sched_getaffinity(0)) > 1:  # fewer threads than CPUs: the child is held to that many CPUs
            assert len(r["cpu_affinity"]) == 1
        if impl.startswith("torch"):
            assert r["torch_num_threads"] == 1 and r["torch_num_interop_threads"] == 1
            assert r.get("torch_cpu_matmul_fp32_precision", "ieee") == "ieee"
        else:
            assert r["jax_matmul_dtype"] == "float32" and r["jax_dot_precision"].endswith("HIGHEST")
    a, b = results
    assert len(a["rounds"]) == len(b["rounds"]) == 3 and a["pid"] != b["pid"]
    # Both imported their frameworks before either built and compiled; each then compiled alone,
    # before any round.
    assert max(a["loaded"], b["loaded"]) <= a["alone_began"] < a["alone_ended"] <= b["alone_began"]
    assert b["alone_began"] < b["alone_ended"] <= min(a["rounds"][0]["began"], b["rounds"][0]["began"])
    spans = sorted([(r["began"], r["ended"], "a") for r in a["rounds"]] + [(r["began"], r["ended"], "b")
                                                                            for r in b["rounds"]])
    assert [s[2] for s in spans] == ["a", "b"] * 3
    assert all(x[1] <= y[0] for x, y in zip(spans, spans[1:]))  # never two rows timing at once
    # and no row writes its result and exits during another's last round
    assert min(a["released"], b["released"]) >= max(a["rounds"][-1]["ended"], b["rounds"][-1]["ended"])
    for r in (a, b):
        rates, per_image = r["img_per_s_rounds"], r.get("members", 1) * 8
        assert len(rates) == 3 and r["img_per_s"] == pytest.approx(sorted(rates)[1])  # the median
        assert rates[0] == pytest.approx(r["rounds"][0]["calls"] * r["iters"] / r["calls"] * per_image
                                         / r["rounds"][0]["seconds"])


def test_the_table_names_the_steps_per_call_of_each_batch_size():
    # --quick fuses fewer steps per call at batch 512 (its calls hold 3,200 images); runs before
    # that rule recorded one number for every batch size.
    assert tables.fused_steps({"steps_per_call": None, "batch_sizes": [64, 512],
                               "steps_per_call_by_batch": {"64": 50, "512": 7}}) == "50 steps at batch 64, 7 at 512"
    assert tables.fused_steps({"steps_per_call": 200, "batch_sizes": [64, 256]}) == "200 steps"
    assert tables.fused_steps({"steps_per_call": 20, "batch_sizes": [64, 512],
                               "steps_per_call_by_batch": {"64": 20, "512": 20}}) == "20 steps"


@pytest.mark.parametrize("impl,model", [("torch_tuned", "mlp"), ("torch_tuned", "wgan"), ("jax_per_step", "mlp"),
                                        ("jax_population", "mlp")])
def test_in_memory_and_per_step_rows_measure_their_own_loop(row_data, in_this_process, impl, model):
    # Run with this process's own thread counts, which torch_setup then leaves as they are.
    import torch

    spec = row_spec(row_data(model), impl, model, torch.get_num_threads(), torch.get_num_interop_threads())
    r = rows.job_row(spec)
    images = r.get("members", 1) * 8  # a population: K members' images per step
    assert r["img_per_s"] == pytest.approx(images * r["iters"] / r["seconds"]) and r["precision"] == "float32"
    if model == "mlp":  # the MLP rows train the reference's widths
        from benchmarks import torch_reference as ref

        G, D = ref.Generator((1, 28, 28), 100), ref.Discriminator((1, 28, 28))
        assert r["n_params"] == sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
    if impl == "torch_tuned":
        # One torch iteration of the WGAN loop trains on n_critic = 5 batches, of the MLP's on one.
        assert r["batches_per_iter"] == (5 if model == "wgan" else 1)
        assert r["iters"] == r["batches_per_iter"] * r["calls"]
        assert r["torch_num_threads"] == torch.get_num_threads()
        assert r.get("torch_cpu_matmul_fp32_precision", "ieee") == "ieee"
    elif impl == "jax_population":  # K = 2 members, --steps_per_call steps fused
        assert r["members"] == 2 and r["iters"] == 4 * r["calls"]
        assert r["jax_matmul_dtype"] == "float32" and r["jax_dot_precision"].endswith("HIGHEST")
    else:  # one jitted step per call, whatever --steps_per_call says
        assert r["steps_per_call"] == 1 and r["iters"] == r["calls"] and r["members"] == 1
        assert r["conv_impl"] is None
        assert r["jax_matmul_dtype"] == "float32" and r["jax_dot_precision"].endswith("HIGHEST")


@pytest.mark.processes
def test_gpu_only_rows_are_refused_on_the_cpu(tmp_path):
    proc = subprocess.run(module_command("benchmarks.throughput", "--impls", "torch_cudagraphs"),
                          capture_output=True, text=True, cwd=str(tmp_path), env=MODULE_ENV, timeout=120)
    assert proc.returncode == 2 and "run on --device gpu only" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_rows_sharing_a_gpu_do_not_preallocate_it(tmp_path, monkeypatch):
    # Every row of a group is alive at once; JAX's default would give the first JAX row 75% of
    # the GPU and leave the next too little. A user's own setting stands.
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    assert harness.child_env("gpu", 1, str(tmp_path))["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in harness.child_env("cpu", 1, str(tmp_path))
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    assert harness.child_env("gpu", 1, str(tmp_path))["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"


def test_a_run_names_the_commit_of_the_code_it_ran():
    # Recorded in every throughput JSON ("-dirty": the tree had changes). The repository has no tags.
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout: a run records no commit")
    commit = harness.source_commit()
    assert len(commit.removesuffix("-dirty")) >= 7 and head.startswith(commit.removesuffix("-dirty"))


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_gpu_run_script_parses():
    assert subprocess.run(["bash", "-n", os.path.join(REPO, "benchmarks", "gpu_run.sh")]).returncode == 0


def test_reference_run_writes_a_grid_per_epoch_and_its_losses(tmp_path):
    # main() in this process: torch is imported here already, and nothing of the run depends on a
    # process of its own (the refusal below runs as one, for the exit code a shell sees).
    synthetic.write_dataset(str(tmp_path / "data"), 130)  # two full batches and a short one
    proc = run_main("benchmarks.torch_reference", "--data_dir", "data", "--no-download", "--num_epochs", "2",
                    "--workers", "0", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "samples_torch").iterdir()) == ["fake_images_1.png", "fake_images_2.png"]
    assert list((tmp_path / "runs_torch" / "mnist").glob("events.out.tfevents.*"))
    assert [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("epoch")] == ["1/2", "2/2"]


@pytest.mark.processes
def test_reference_run_refuses_bad_input_in_one_line(tmp_path):
    proc = subprocess.run(module_command("benchmarks.torch_reference", "--data_dir", "nowhere", "--no-download"),
                          capture_output=True, text=True, cwd=str(tmp_path), env=MODULE_ENV, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_the_quality_table_is_rendered_from_its_row_jsons():
    # docs/quality/table.md (shown in docs/quality.md) is what scripts/quality_table.py makes from the
    # committed row JSONs, and nothing else.
    from scripts import quality_table
    out = os.path.join(REPO, "docs", "quality")
    with open(os.path.join(out, "table.md"), encoding="utf-8") as f:
        assert quality_table.markdown(out) == f.read()


# -- the layout: benchmarks/ and scripts/ read one way ---------------------------------------------
def _imports(path: str) -> set[str]:
    """The modules a file imports (``from a.b import c`` counts a.b and a.b.c), anywhere in it."""
    import ast

    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return out


def _modules(package: str) -> dict[str, str]:
    folder = os.path.join(REPO, package)
    return {f"{package}.{n[:-3]}": os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if n.endswith(".py") and n != "__init__.py"}


@pytest.mark.quick
def test_benchmarks_and_scripts_need_no_path_hacks_and_never_import_the_tests():
    for package in ("benchmarks", "scripts"):
        for module, path in _modules(package).items():
            with open(path, encoding="utf-8") as f:
                assert "sys.path.insert" not in f.read(), module
            if package == "benchmarks":
                assert not {m for m in _imports(path) if m == "tests" or m.startswith("tests.")}, module


@pytest.mark.quick
def test_benchmark_modules_import_each_other_without_a_circle():
    mods = _modules("benchmarks")
    graph = {m: {d for d in _imports(p) if d in mods and d != m} for m, p in mods.items()}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:  # depth first; 1 = on the current path, 2 = done
        state[m] = 1
        for d in sorted(graph[m]):
            assert state.get(d) != 1, " -> ".join([*trail, m, d])
            if d not in state:
                visit(d, [*trail, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


# -- the headline's spread, and the old GPU table's label ----------------------------------------------
@pytest.mark.quick
def test_runs_of_the_same_command_are_matched_whatever_file_they_wrote():
    old = "python benchmarks/throughput.py --quick --json /tmp/h2/cand/q14.json"
    assert analysis._same_command(old) == analysis._same_command("python -m benchmarks.throughput --quick --json x.json")
    assert analysis._same_command(old) != analysis._same_command("python -m benchmarks.throughput --quick --threads 1")


@pytest.mark.quick
def test_the_headline_spread_spans_every_run_at_that_batch_and_precision():
    runs = [{"summary": [{"batch_size": 64, "precision": "float32", "ratio": 3.01},
                         {"batch_size": 64, "precision": "tf32", "ratio": 9.0}]},
            {"summary": [{"batch_size": 64, "precision": "float32", "ratio": 1.55},
                         {"batch_size": 512, "precision": "float32", "ratio": 2.14}]}]
    assert analysis.ratio_spread(runs, 64) == (1.55, 3.01, 2)
    assert analysis.ratio_spread(runs, 512) == (2.14, 2.14, 1)


def test_the_headline_counts_every_committed_run_of_its_command_the_rejected_candidates_too(tmp_path):
    def run(when: str, ratio: float, command: str = "python -m benchmarks.throughput --quick --json x.json") -> str:
        return json.dumps({"created_utc": when, "command": command,
                           "summary": [{"batch_size": 64, "precision": "float32", "ratio": ratio}]})

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)
    res = tmp_path / "results"
    (res / "runs").mkdir(parents=True)
    git("init", "-q")
    (res / "cpu_quick.json").write_text(run("2026-11-01", 1.5))
    (res / "runs" / "cpu_quick_1thread-1.json").write_text(run("2026-11-02", 9.0))  # another command's file
    git("add", ".")
    git("commit", "-qm", "one")
    (res / "cpu_quick.json").write_text(run("2026-11-03", 5.0, "python -m benchmarks.throughput --threads 1"))
    git("commit", "-qam", "another command into the same file")
    (res / "cpu_quick.json").write_text(run("2026-11-04", 2.0))
    (res / "runs" / "cpu_quick-1.json").write_text(run("2026-11-04", 2.0))  # the kept candidate
    (res / "runs" / "cpu_quick-2.json").write_text(run("2026-11-05", 3.0))  # the rejected one
    git("add", ".")
    git("commit", "-qm", "two")
    (res / "runs" / "cpu_quick-1.json").write_text(run("2026-11-06", 2.5))  # not committed yet
    runs = analysis.committed_runs(str(res / "cpu_quick.json"))
    assert [r["created_utc"] for r in runs] == ["2026-11-06", "2026-11-05", "2026-11-04", "2026-11-01"]
    assert analysis.ratio_spread(runs, 64) == (1.5, 3.0, 4)


@pytest.mark.quick
def test_a_comparison_names_the_applicable_pytorch_rows_it_left_out():
    doc = {"settings": {"model": "dcgan"}, "device": "cpu",
           "rows": [{"impl": "torch_reference"}, {"impl": "torch_tuned"}, {"impl": "jax_scan"}]}
    missing = analysis.missing_torch_rows(doc)
    assert "torch_tuned_spin" in missing and "torch_compile" in missing and "torch_channels_last" in missing
    assert "torch_reference" not in missing and "torch_cudagraphs" not in missing  # ran; GPU only
    assert "torch_channels_last" not in analysis.missing_torch_rows({**doc, "settings": {"model": "mlp"}})


@pytest.mark.quick
def test_the_old_h200_table_says_which_commit_made_it_and_that_its_sides_ran_different_precisions():
    path = os.path.join(REPO, "benchmarks", "results", "h200.json")
    text = tables.render_legacy_gpu(analysis.load(path), path)
    heading = text.split("\n", 1)[0]
    assert "NVIDIA H200, commit 900cbe1 (2026-11-27)" in heading  # git log --diff-filter=A of that file
    assert "**TF32**" in heading and "**true float32**" in heading and "--matmul_dtype float32" in heading
    assert "×" not in text  # no cross-precision ratio


@pytest.mark.quick
def test_each_headline_ratio_carries_the_range_of_its_per_round_ratios():
    rows = [{**_row("torch_tuned", 64, 200.0), "img_per_s_rounds": [100.0, 200.0, 400.0]},
            {**_row("jax_scan", 64, 600.0), "img_per_s_rounds": [300.0, 600.0, 600.0]}]
    (e,) = analysis.annotate(_doc(rows, [64]))["summary"]
    assert e["ratio"] == pytest.approx(3.0) and e["ratio_rounds"] == pytest.approx([3.0, 3.0, 1.5])
    assert tables._ratio(e) == "**3.00×** (1.50–3.00 per round)"


def test_the_conv_headline_and_table_carry_their_per_round_ranges():
    from benchmarks import docs_blocks

    for name in ("cpu_dcgan_reference.json", "cpu_wgan_reference.json"):
        doc = analysis.load(os.path.join(docs_blocks.RESULTS, name))
        ok = [r for r in doc["rows"] if r.get("ok") and r["batch_size"] == 64 and r["precision"] == "float32"]
        torch = max((r for r in ok if r["framework"] == "torch"), key=lambda r: sorted(r["img_per_s_rounds"])[2])
        jax = next(r for r in ok if r["impl"] == "jax_scan")
        per_round = [j / t for j, t in zip(jax["img_per_s_rounds"], torch["img_per_s_rounds"])]
        span = f"({min(per_round):.2f}–{max(per_round):.2f} per round)"
        assert span in docs_blocks.headline(docs_blocks.README_SOURCES), (name, span)
        assert span in docs_blocks.render_conv([doc]), (name, span)


# The PyTorch ports are libraries (tests and rows import them) that also carry the reference's
# own run as an entry point; every other module with a ``__main__`` is a command.
PORTS = {"benchmarks.torch_reference", "benchmarks.torch_dcgan"}


@pytest.mark.quick
def test_no_command_imports_a_command_and_no_benchmark_file_outgrows_one_job():
    mods = _modules("benchmarks")
    commands = set()
    for module, path in mods.items():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert len(text.splitlines()) <= 375, f"{module}: {len(text.splitlines())} lines"
        if '__name__ == "__main__"' in text and module not in PORTS:
            commands.add(module)
    assert {"benchmarks.throughput", "benchmarks.bench_row", "benchmarks.parity_float32"} <= commands
    for module, path in mods.items():
        assert not (_imports(path) & commands) - {module}, module


@pytest.mark.quick
def test_a_result_records_the_command_it_was_handed_not_its_callers(monkeypatch):
    # In-process runs (tests, scripts calling main(argv)) record their own arguments; a command
    # line run records sys.argv's.
    from benchmarks.harness import command_line

    monkeypatch.setattr(sys, "argv", ["/usr/bin/pytest", "-q", "tests"])
    assert command_line("benchmarks.population_memory", ["--json", "m.json"]) == \
        "python -m benchmarks.population_memory --json m.json"
    assert command_line("benchmarks.startup") == "python -m benchmarks.startup -q tests"

