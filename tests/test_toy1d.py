"""The 1-D GAN (jaxgan.gan1d) and its command (python -m jaxgan.toy1d): the W1 helper against
scipy and closed forms, a vmapped population member against the solo run of its seed, a solo
run's determinism, the command's files and per-seed table on a tiny budget, and bad input."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
from scipy import stats

from jaxgan import gan1d, toy1d
from tests.conftest import run_main, spawn

# Small enough to compile and run in seconds; the properties tested do not depend on the size.
# The command test uses the same settings and population size, so the command finds the programs
# the tests above compiled in XLA's persistent cache (see conftest).
TINY = gan1d.Settings(steps=10, batch=64, d_refit=10, refit_batch=64, hidden=8, samples=3000)
TINY_FLAGS = ("--steps", "10", "--batch", "64", "--d_refit", "10", "--refit_batch", "64", "--hidden", "8",
              "--samples", "3000")
SEEDS = [3, 7, 11]


def normal_quantiles(n: int) -> np.ndarray:
    return stats.norm.ppf((np.arange(n) + 0.5) / n)


@pytest.mark.quick
def test_wasserstein1_to_normal_agrees_with_scipy_and_closed_forms():
    x = np.random.default_rng(0).normal(size=40_000)
    for sample in (x, x + 0.7, 2.0 * x - 0.3):
        # Equal-size samples: scipy's W1 is the mean gap between the sorted values.
        expected = stats.wasserstein_distance(sample, normal_quantiles(len(sample)))
        assert gan1d.wasserstein1_to_normal(sample) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert gan1d.wasserstein1_to_normal(x) < 0.02  # a normal sample is close to N(0, 1)
    assert gan1d.wasserstein1_to_normal(x + 0.7) == pytest.approx(0.7, abs=0.02)  # shift: W1 = shift
    # N(0, s^2) against N(0, 1): W1 = E|sZ - Z| = |s - 1| sqrt(2/pi); the exact quantiles give 0.
    q = normal_quantiles(20_000)
    assert gan1d.wasserstein1_to_normal(1.5 * q) == pytest.approx(0.5 * math.sqrt(2 / math.pi), abs=2e-3)
    assert gan1d.wasserstein1_to_normal(np.random.default_rng(1).permutation(q)) == pytest.approx(0, abs=1e-5)


def test_max_abs_d_minus_half_looks_only_inside_minus_two_two():
    grid = np.linspace(-4, 4, 401)
    d = np.where(np.abs(grid) <= 2, 0.5, 1.0)
    d[np.argmin(np.abs(grid - 1.5))] = 0.46
    assert gan1d.max_abs_d_minus_half(grid, d) == pytest.approx(0.04, abs=1e-9)


@pytest.fixture(scope="module")
def tiny_runs():
    toy = gan1d.Toy(TINY)
    population = jax.device_get(gan1d.run_population(toy, SEEDS))
    solo = [jax.device_get(gan1d.run_solo(toy, 7)) for _ in range(2)]
    return population, solo


def test_population_member_equals_the_solo_run_of_its_seed(tiny_runs):
    population, (solo, _) = tiny_runs
    member = jax.tree.map(lambda a: a[1], population)  # seed 7
    # Every leaf: G, D, both Adam states, G's average, the refitted D, the stages' samples and D.
    jax.tree_util.tree_map_with_path(
        lambda path, a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6,
                                                      err_msg=jax.tree_util.keystr(path)), member, solo)
    # The comparison means something: the other members, other seeds, differ from seed 7.
    for other in (0, 2):
        assert not np.allclose(population["samples"][other], solo["samples"], atol=1e-3)
    assert int(solo["state"]["step"]) == TINY.steps


def test_a_solo_run_is_deterministic(tiny_runs):
    _, (first, second) = tiny_runs
    leaves = jax.tree.leaves(first)
    assert leaves and all(np.array_equal(a, b) for a, b in zip(leaves, jax.tree.leaves(second)))


def test_training_moves_g_to_the_data():
    # 1,000 steps are far from the default run's convergence, but every seed tried (0-7) goes
    # from W1 0.33-0.77 (the untrained G) to 0.08-0.19; seed 0 starts at 0.77.
    toy = gan1d.Toy(gan1d.Settings(steps=1000, batch=256, d_refit=200, refit_batch=512, hidden=16,
                                   samples=5000))
    key = jax.random.key(0)
    untrained = jax.jit(lambda k: toy.G(toy.init(jax.random.fold_in(k, 0))["g"], jax.random.uniform(k, (5000,))))(key)
    trained = gan1d.run_solo(toy, 0)["samples"][-1]
    before, after = gan1d.wasserstein1_to_normal(untrained), gan1d.wasserstein1_to_normal(trained)
    assert before > 0.5 and after < 0.25 and after < before / 2, (before, after)


def test_the_command_writes_figure_and_a_per_seed_table_that_matches_its_samples(tmp_path):
    # main() in this process: what a process of its own adds (the exit code a shell sees) is
    # tested below.
    out = tmp_path / "t"
    proc = run_main("jaxgan.toy1d", "--out", str(out), "--seeds", "11,3,7", *TINY_FLAGS)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "toy1d.json").read_text())
    samples = np.load(out / "samples.npy")
    assert samples.shape == (3, 3000)
    rows = summary["seeds"]
    assert [r["seed"] for r in rows] == [11, 3, 7] and summary["figure_seed"] == 11
    for r, s in zip(rows, samples):
        assert r["w1"] == pytest.approx(stats.wasserstein_distance(s, normal_quantiles(len(s))), rel=1e-4)
        assert 0 <= r["max_abs_d_minus_half"] <= 0.5
        assert f"| {r['seed']} | {r['w1']:.4f} | {r['max_abs_d_minus_half']:.4f} |" in proc.stdout
    for key in ("w1", "max_abs_d_minus_half"):
        values = [r[key] for r in rows]
        assert summary["worst"][key] == max(values)
        assert summary["mean"][key] == pytest.approx(sum(values) / len(values))
    assert summary["all_meet_targets"] is False  # 10 steps do not converge, and it says so
    assert summary["settings"]["steps"] == 10 and summary["settings"]["hidden"] == 8
    assert (out / "figure.png").stat().st_size > 10_000

    # --seed runs that one seed alone (no vmap): it reproduces the population's row for seed 3.
    solo = run_main("jaxgan.toy1d", "--out", str(tmp_path / "s"), "--seed", "3", *TINY_FLAGS)
    assert solo.returncode == 0, solo.stderr
    (row,) = json.loads((tmp_path / "s" / "toy1d.json").read_text())["seeds"]
    assert row["seed"] == 3
    assert row["w1"] == pytest.approx(rows[1]["w1"], rel=1e-4)
    assert row["max_abs_d_minus_half"] == pytest.approx(rows[1]["max_abs_d_minus_half"], abs=1e-5)


def test_every_flag_states_its_default():
    for action in toy1d.build_parser()._actions:
        if action.dest != "help":
            assert "(default" in (action.help or ""), action.option_strings


BAD_INPUT = [
    (["--seeds", "0,x"], "comma-separated list of integers"),
    (["--seeds", "1,-2"], "[0, 2**32)"),
    (["--seed", "-1"], "[0, 2**32)"),
    (["--seeds", "3,3"], "repeats a seed"),
    (["--seeds", "1", "--seed", "2"], "not allowed with"),
    (["--steps", "5"], "--steps must be >= 10"),
    (["--lr", "nan"], "--lr must be a finite number > 0"),
    (["--ema", "1"], "--ema must be in [0, 1)"),
    (["--batch", "many"], "invalid int value"),
    (["--out", "FILE"], "exists and is not a directory"),
    (["--out", "FILE/sub"], "cannot create --out"),
]


def _in(tmp_path, args):
    (tmp_path / "FILE").write_text("not a folder")
    return [str(tmp_path / a) if a.startswith("FILE") else a for a in args]


@pytest.mark.quick
@pytest.mark.parametrize("args, message", BAD_INPUT)
def test_bad_input_is_refused_with_one_line_and_code_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    try:
        code = toy1d.main(_in(tmp_path, args))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "toy1d").exists()  # nothing written


@pytest.mark.processes
def test_bad_input_from_the_shell_is_one_line_and_exit_2(tmp_path):
    # Both ways out, as a shell sees them: main's own refusal (its return value becomes the exit
    # code) and argparse's. Every message is pinned in the test above; these two real processes
    # are started together, so their start-up and imports share the CPUs.
    cases = [BAD_INPUT[9], BAD_INPUT[8]]
    procs = [spawn("jaxgan.toy1d", *_in(tmp_path, args), cwd=str(tmp_path)) for args, _ in cases]
    for proc, (args, message) in zip(procs, cases):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err and not (tmp_path / "toy1d").exists()
