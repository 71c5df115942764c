"""Populations: K runs as one vmapped program. Member i is the solo run of its seed and settings
(to float tolerance, compared within the first steps: chaos), and a population trains, checkpoints
and resumes like a solo run."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import generate, parallel, population, program, report, steps
from jaxgan.config import ConfigError, parse_args
from jaxgan.trainer import train_and_evaluate
from tests.conftest import TRAIN_FLAGS, leaves_equal, replace, run_main, small_config

# One population for the whole file, and the solo runs of its members, all on 200 images and at
# the trainer's default steps_per_call (TRAIN_FLAGS leave it at 200): the tests' own chunks, the
# trainer's runs and the command's then share one compiled program per configuration
# (jaxgan.program) instead of each compiling its own. Every member has its own learning rate, so
# a member trained with another's settings shows; member 1 has its own G rate and member 2 its own
# D rate (--g_lr/--d_lr, 0 = the member's --lr).
SEED, LRS, G_LRS, D_LRS = 10213, (2e-4, 5e-4, 1e-4), (0.0, 3e-4, 0.0), (0.0, 0.0, 2e-4)
POP_FLAGS = [*TRAIN_FLAGS, "--population", "3", "--lr", ",".join(map(str, LRS)),
             "--g_lr", ",".join(map(str, G_LRS)), "--d_lr", ",".join(map(str, D_LRS))]


def population_config(tmp_path, **overrides):
    return small_config(tmp_path, population=3, lr=LRS, g_lr=G_LRS, d_lr=D_LRS, steps_per_call=200, **overrides)


def solo_config(tmp_path, i, **overrides):
    """Member i's solo run, written out independently of jaxgan.population.member_config (its G and
    D rates spelled out, where the population's 0 leaves them to --lr)."""
    return small_config(tmp_path, seed=SEED + i, lr=LRS[i], g_lr=G_LRS[i] or LRS[i], d_lr=D_LRS[i] or LRS[i],
                        steps_per_call=200, **overrides)


def assert_close(a, b, atol=1e-5, rtol=1e-4):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol)


@pytest.fixture(scope="module")
def data():
    return jnp.asarray(np.random.default_rng(0).integers(0, 256, (200, 784), dtype=np.uint8))


def assert_member_is_solo(gan, member, solo):
    """Equal to float tolerance, except where exactly-zero true gradients meet Adam: the biases of
    G's Linear layers that feed a BatchNorm (BatchNorm subtracts them again, so their true gradient
    is 0 and Adam's g / (|g| + eps) turns rounding noise into steps of up to lr), and the running
    means that record them. Those cannot change G's output, which is compared instead."""
    def strip(state):
        g_params = {**state.g_params, "linears": {i: {"kernel": l["kernel"]} for i, l in state.g_params["linears"].items()}}
        g_stats = {"norms": {i: {"var": n["var"]} for i, n in state.g_stats["norms"].items()}}
        return state.replace(g_params=g_params, g_stats=g_stats, g_opt=None)
    assert_close(strip(member), strip(solo), atol=1e-6, rtol=1e-5)
    # G in training mode (the reference's sampling mode): the drifting biases cancel in BatchNorm.
    # (With running statistics they would not: the averages lag behind the biases' drift.)
    z = gan.sample_noise(jax.random.key(99), 64)
    np.testing.assert_allclose(np.asarray(gan.generate(member, z, True)[0]),
                               np.asarray(gan.generate(solo, z, True)[0]), atol=2e-5)


def run_chunk(cfg, data, perm, length):
    """``length`` steps from the epoch's first batch, from a fresh run of ``cfg``, by the trainer's
    own compiled chunk (jaxgan.program), its arguments laid out as the trainer lays them out:
    arrays placed otherwise lower to a different program, which the trainer's runs could not
    reuse. Returns the run's GAN (a population's: member 0's), its state and the metrics."""
    prog = program.compile_run(cfg)
    put = parallel.put
    state, metrics = prog.chunk(put(prog.initial_state, prog.state_sharding), put({"images": np.asarray(data)}, prog.replicated),
                                put(np.asarray(perm), prog.state_sharding), put(np.int32(0), prog.replicated),
                                put(np.int32(length), prog.replicated))
    return prog.gan, state, metrics


def test_member_i_equals_the_solo_run_of_its_seed_and_learning_rates(tmp_path, data):
    cfg = population_config(tmp_path)
    pop = program.compile_run(cfg).run
    assert pop.seeds == (SEED, SEED + 1, SEED + 2)
    _, state, metrics = run_chunk(cfg, data, pop.permutations(0, 200), 8)
    assert metrics["d_loss"].shape == (3, 200)  # one slot per step the program can run
    z = jax.random.uniform(jax.random.key(99), (64, 8))
    for i in range(3):
        perm = data_lib.epoch_permutation(steps.run_keys(SEED + i)["shuffle"], 0, 200)
        gan, solo, solo_metrics = run_chunk(solo_config(tmp_path, i), data, perm, 8)
        assert_member_is_solo(gan, population.member(state, i), solo)
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            np.testing.assert_allclose(np.asarray(metrics[key][i]), np.asarray(solo_metrics[key]), rtol=1e-5)
            assert np.all(np.asarray(solo_metrics[key])[8:] == 0)  # the slots the 8 steps left unwritten
        if i:  # not trivially equal: member i is far from the previous member's solo run
            other = np.asarray(gan.generate(population.member(state, i - 1), z, True)[0])
            assert np.max(np.abs(other - np.asarray(gan.generate(solo, z, True)[0]))) > 0.05


@pytest.mark.quick
def test_population_flags_parse_and_bad_ones_are_refused():
    cfg = parse_args(["--population", "4", "--lr", "1e-4,2e-4,3e-4,4e-4"])
    assert cfg.lr == (1e-4, 2e-4, 3e-4, 4e-4) and population.member_values(cfg)["seed"] == (10213, 10214, 10215, 10216)
    assert population.member_values(parse_args(["--population", "2", "--seeds", "3,9"]))["seed"] == (3, 9)
    # One value is every member's.
    assert population.member_values(parse_args(["--population", "3", "--beta1", "0.4"]))["beta1"] == (0.4, 0.4, 0.4)
    for args, needle in ((["--population", "2", "--lr", "1e-4,2e-4,3e-4"], "one value or one per member"),
                         (["--population", "2", "--seeds", "1,2,3"], "--seeds needs 2 values"),
                         (["--population", "0"], "population must be positive"),
                         (["--lr", "1e-4,2e-4"], "one value or one per member"),
                         (["--population", "2", "--lr", "1e-4,,2e-4"], "lr: cannot read"),
                         (["--population", "2", "--lr", "2e-4,"], "lr: cannot read"),
                         (["--g_hidden", "64,,32,16"], "g_hidden: cannot read")):
        with pytest.raises(ConfigError, match=needle):
            parse_args(args)


def test_population_cli_trains_members_writes_their_grids_and_one_checkpoint(workdir):
    run = run_main("jaxgan.train", *POP_FLAGS, "--num_epochs", "2", "--ckpt_every", "10", cwd=str(workdir))
    assert run.returncode == 0, run.stderr
    assert "a population of 3" in run.stdout and "(mean of 3 members)" in run.stdout
    for i in range(3):
        assert (workdir / "samples" / "mnist" / f"member_{i}" / "fake_images_2.png").exists()
    assert sorted(p for p in os.listdir(workdir / "checkpoints" / "mnist") if p.isdigit()) == ["10", "14"]
    scalars = report.read_scalars(str(workdir / "runs" / "mnist"))
    for tag in ("member_0/Generator_Loss", "member_2/Generator_Loss", "Generator_Loss/mean",
                "Generator_Loss/min", "Generator_Loss/max"):
        assert [s for s, _ in scalars[tag]] == [1, 2], tag
    values = {i: scalars[f"member_{i}/Generator_Loss"][-1][1] for i in range(3)}
    assert scalars["Generator_Loss/min"][-1][1] == pytest.approx(min(values.values()))
    assert scalars["Generator_Loss/max"][-1][1] == pytest.approx(max(values.values()))
    # Member 2 at step 10 (mid-epoch 2, after the first epoch's short batch) is the solo run with
    # seed + 2 and the third learning rate and D rate, to float tolerance.
    solo = run_main("jaxgan.train", *TRAIN_FLAGS, "--seed", str(SEED + 2), "--lr", str(LRS[2]), "--d_lr", str(D_LRS[2]),
                    "--num_epochs", "2",
                    "--ckpt_every", "10", "--ckpt_dir", "solo", "--sample_dir", "s2", "--logdir", "r2", cwd=str(workdir))
    assert solo.returncode == 0, solo.stderr
    cfg = population_config(workdir, data_dir=str(workdir / "data"))
    solo_cfg = solo_config(workdir, 2, data_dir=str(workdir / "data"))
    pop_ck = ckpt_lib.Checkpoints(str(workdir / "checkpoints" / "mnist"))
    solo_ck = ckpt_lib.Checkpoints(str(workdir / "solo" / "mnist"))
    try:
        pop_state, _, _ = pop_ck.restore(population.build(cfg, abstract=True)[1], 10)
        solo_state, _, _ = solo_ck.restore(steps.build(solo_cfg, abstract=True)[1], 10)
    finally:
        pop_ck.close()
        solo_ck.close()
    gan, _ = steps.build(solo_cfg, abstract=True)
    assert_member_is_solo(gan, population.member(pop_state, 2), solo_state)
    # sample --member 2 draws from that member.
    drawn = run_main("jaxgan.sample", "--member", "2", "--num_samples", "8", "--out", "m2.npy", cwd=str(workdir))
    assert drawn.returncode == 0 and "member 2" in drawn.stdout, drawn.stderr
    m2 = np.load(workdir / "m2.npy")
    assert m2.shape == (8, 28, 28, 1)
    # ... and not from another: the newest checkpoint's member 2, drawn here with sample's defaults
    # (noise seed 0, --bn batch), gives the same images; member 0's differ.
    pop_ck = ckpt_lib.Checkpoints(str(workdir / "checkpoints" / "mnist"))
    try:
        newest, _, _ = pop_ck.restore(population.build(cfg, abstract=True)[1], 14)
    finally:
        pop_ck.close()
    np.testing.assert_array_equal(generate.draw(gan, population.member(newest, 2), 8, 0, "batch"), m2)
    assert run_main("jaxgan.sample", "--member", "0", "--num_samples", "8", "--out", "m0.npy",
                    cwd=str(workdir)).returncode == 0
    assert not np.array_equal(np.load(workdir / "m0.npy"), m2)
    bad = run_main("jaxgan.sample", "--member", "3", "--out", "m.npy", cwd=str(workdir))
    assert bad.returncode == 2 and "the run has 3 members (0..2)" in bad.stderr


def test_a_population_resumes_bit_exactly(workdir):
    cfg = population_config(workdir, data_dir=str(workdir / "data"), num_epochs=1)
    train_and_evaluate(cfg)
    resumed = train_and_evaluate(replace(cfg, num_epochs=2, resume=True))
    straight = train_and_evaluate(population_config(workdir / "straight", data_dir=str(workdir / "data"), num_epochs=2))
    assert leaves_equal(resumed, straight)
    with pytest.raises(ConfigError, match="population=3.*population=2"):
        train_and_evaluate(replace(cfg, num_epochs=3, resume=True, population=2, lr=1e-4, g_lr=0.0, d_lr=0.0))
