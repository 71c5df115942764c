"""No training run is ever lost: kills, signals, damaged checkpoints, non-finite values, a second
run on the same folder. Each failure ends in one clear line, never a traceback."""

import os
import pathlib
import random
import re
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import pytest

from jaxgan import checkpoint as ckpt_lib
from jaxgan import report, steps
from jaxgan.config import ConfigError
from jaxgan.formats import write_mnist
from jaxgan.trainer import Stopped, train_and_evaluate
from tests import beside
from tests.conftest import (TRAIN_FLAGS, blob_images, cache_data, leaves_equal, replace, restore_newest,
                            run_main, small_config)
from tests.uninterrupted import uninterrupted

# kill -9, signals and a fresh process's compile cache need real processes: those are jobs on the
# suite's background thread (tests/beside.py), each test checking its job's result here. The
# stale-lock test's `true` is too short-lived to count as a process (conftest's `processes` mark).

# small_config's steps_per_call too: the launched runs are then the very program that the runs
# in this process compile, and each side reads it from the other through the compile cache.
FLAGS = [*TRAIN_FLAGS, "--data_dir", "data", "--steps_per_call", "4"]
EPOCHS = 8  # the kill and signal tests' runs, compared with one uninterrupted run of this length


def workdir_in(folder: str) -> None:
    """conftest's ``workdir`` (200 images: 7 steps an epoch) in a job's folder, its cache built
    (a job's ``prepare``: on the main thread)."""
    images, labels = blob_images(200, 28, 28, 1)
    write_mnist(os.path.join(folder, "data"), images[..., 0], labels)
    cache_data(os.path.join(folder, "data"))


def wait_for_epoch(proc, epoch: int) -> None:
    """Read ``proc``'s output until it reports that epoch ``epoch`` (or a later one) is done."""
    for line in proc.stdout:
        if line.startswith("epoch ") and int(line.split()[1].split("/")[0]) >= epoch:
            return


def kill_after(proc, epoch: int, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after it reports epoch ``epoch`` (0: after start-up begins).
    Driven by the run's own progress, not the clock, so a faster machine cannot outrun it."""
    if epoch:
        wait_for_epoch(proc, epoch)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return True


KILL_ARGS = ["--num_epochs", str(EPOCHS), "--ckpt_every", "2", "--resume"]


@beside.job("reliability: kill -9", gb=0.45, prepare=workdir_in)
def killed_three_times(folder, run):
    # 8 epochs x 7 steps, a checkpoint every 2 steps: kills land during start-up, during steps
    # and during checkpoint writes. Each restart resumes from the newest good checkpoint.
    rng = random.Random(1234)
    moments = [(0, rng.uniform(0.5, 2.0)), (rng.randint(1, 3), rng.uniform(0, 0.3)),
               (rng.randint(4, 6), rng.uniform(0, 0.3))]
    for epoch, delay in moments:
        killed = kill_after(run.spawn("jaxgan.train", *FLAGS, *KILL_ARGS, cwd=folder), epoch, delay)
        assert killed, f"the run ended before epoch {epoch}"
    return folder


@pytest.mark.beside("reliability: kill -9")
def test_kill_9_at_random_moments_then_resume_is_bit_exact(tmp_path_factory):
    workdir = pathlib.Path(beside.result("reliability: kill -9"))
    # The last restart, which is not killed, runs in this process (main(argv), as the command).
    done = run_main("jaxgan.train", *FLAGS, *KILL_ARGS, cwd=str(workdir))
    assert done.returncode == 0, done.stderr
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=EPOCHS)
    straight, _ = uninterrupted(tmp_path_factory, EPOCHS)
    resumed, _, step = restore_newest(str(workdir / "checkpoints"), cfg)
    assert step == EPOCHS * 7
    assert leaves_equal(resumed.g_params, straight.g_params)
    assert leaves_equal(resumed, straight)
    # Nothing half-written is left behind.
    assert not [p for p in os.listdir(workdir / "checkpoints" / "mnist") if "tmp" in p]


SIGNALS = ((signal.SIGTERM, 143, []), (signal.SIGINT, 130, ["--resume", "--ckpt_every", "1000"]))


@beside.job("reliability: signals", gb=0.45, prepare=workdir_in)
def stopped_by_two_signals(folder, run):
    # One run stopped twice: SIGTERM, then SIGINT in the process that resumed it; each exits with
    # the shell's code for its signal after checkpointing where it stopped. The first run saves
    # every epoch, as by default; the second schedules no checkpoint before the run's end
    # (--ckpt_every 1000), so the one it leaves is the signal's own, written mid-period.
    ck = os.path.join(folder, "checkpoints", "mnist")
    last_stop = 0
    for sig, code, flags in SIGNALS:
        proc = run.spawn("jaxgan.train", *FLAGS, "--num_epochs", str(EPOCHS), *flags, cwd=folder)
        under_way = last_stop // 7 + 2  # two epochs past the last stop: this process is training
        wait_for_epoch(proc, under_way)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err
        assert "checkpoint written to" in out and "--resume" in out and "Traceback" not in err
        stopped_at = max(int(p) for p in os.listdir(ck) if p.isdigit())
        assert 7 * under_way <= stopped_at < EPOCHS * 7
        assert f"{sig.name}: stopped at step {stopped_at}; checkpoint written to" in out
        last_stop = stopped_at
    return folder


@pytest.mark.beside("reliability: signals")
def test_signals_finish_the_chunk_checkpoint_and_exit_cleanly_then_resume_is_bit_exact(tmp_path_factory):
    workdir = pathlib.Path(beside.result("reliability: signals"))
    # A third resume, here, finishes the run.
    done = run_main("jaxgan.train", *FLAGS, "--num_epochs", str(EPOCHS), *SIGNALS[-1][2], cwd=str(workdir))
    assert done.returncode == 0, done.stderr
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=EPOCHS)
    assert leaves_equal(restore_newest(str(workdir / "checkpoints"), cfg)[0], uninterrupted(tmp_path_factory, EPOCHS)[0])


@pytest.mark.quick
@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(workdir, capsys, tmp_path_factory, damage):
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=2)
    train_and_evaluate(cfg)
    state_dir = workdir / "ckpt" / "mnist" / "14" / "state"
    files = sorted((p for p in state_dir.rglob("*") if p.is_file() and p.stat().st_size > 0),
                   key=lambda p: -p.stat().st_size)
    if damage == "truncate":
        with open(files[0], "r+b") as f:
            f.truncate(files[0].stat().st_size // 2)
    else:
        (state_dir / "manifest.ocdbt").unlink()
    capsys.readouterr()
    resumed = train_and_evaluate(replace(cfg, num_epochs=3, resume=True))
    captured = capsys.readouterr()
    warning = [ln for ln in captured.err.splitlines() if "checkpoint 14 is damaged" in ln]
    assert len(warning) == 1 and "trying the previous one" in warning[0]
    assert "resumed from" in captured.out and "(step 7)" in captured.out
    assert leaves_equal(resumed, uninterrupted(tmp_path_factory, 3)[0])


@pytest.mark.quick
def test_leftover_temporary_checkpoint_folder_is_ignored_and_cleaned(workdir):
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=1)
    train_and_evaluate(cfg)
    leftover = workdir / "ckpt" / "mnist" / "9.orbax-checkpoint-tmp-1700000000000000"
    (leftover / "state").mkdir(parents=True)
    (leftover / "state" / "junk").write_bytes(b"\0" * 10)
    resumed = train_and_evaluate(replace(cfg, num_epochs=2, resume=True))
    assert int(resumed.step) == 14
    assert not leftover.exists()


@pytest.mark.quick
def test_a_failed_save_keeps_the_previous_checkpoint(workdir, monkeypatch):
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=1)
    train_and_evaluate(cfg)
    real_save = ckpt_lib.ocp.CheckpointManager.save

    def disk_full(self, step, *a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_lib.ocp.CheckpointManager, "save", disk_full)
    with pytest.raises(ckpt_lib.CheckpointError, match=r"could not write checkpoint 14 .*No space left.*kept: 7"):
        train_and_evaluate(replace(cfg, num_epochs=2, resume=True))
    monkeypatch.setattr(ckpt_lib.ocp.CheckpointManager, "save", real_save)
    state, _, step = restore_newest(str(workdir / "ckpt"), cfg)
    assert step == 7 and bool(steps.is_finite(state))


def test_resume_logs_safe_changes_and_refuses_model_changes(workdir, capsys):
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=1)
    train_and_evaluate(cfg)
    capsys.readouterr()
    train_and_evaluate(replace(cfg, num_epochs=2, interval=2, resume=True))
    assert "resume with changed settings: interval 1 -> 2, num_epochs 1 -> 2" in capsys.readouterr().out
    # (The dataset picks the folder, <ckpt_dir>/<dataset>, so another dataset is another run.)
    for field, value in (("loss", "minimax"), ("noise", "normal"), ("latent_dim", 9), ("d_hidden", (8, 8))):
        with pytest.raises(ConfigError, match=f"--resume: the checkpoint was trained with {field}=") as refused:
            train_and_evaluate(replace(cfg, num_epochs=3, resume=True, **{field: value}))
        # The flag that resumes it, as a command line spells it (a default may have asked for the other).
        saved = getattr(cfg, field)
        spelled = ",".join(map(str, saved)) if isinstance(saved, tuple) else str(saved)
        assert f"; pass --{field} {spelled} or use another --ckpt_dir" in str(refused.value)


@pytest.mark.quick
def test_non_finite_values_stop_the_run_and_keep_the_last_good_checkpoint(workdir):
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=1)
    train_and_evaluate(cfg)
    # The command itself (main(argv), in this process): the reason on stderr, exit code 1.
    done = run_main("jaxgan.train", *FLAGS, "--num_epochs", "2", "--resume", "--lr", "1e30", "--ckpt_dir", "ckpt",
                    "--sample_dir", "samples", "--logdir", "runs", cwd=str(workdir))
    assert done.returncode == 1
    assert re.search("non-finite .* checkpoint 7 .* last good state", done.stderr), done.stderr
    assert sorted(os.listdir(workdir / "ckpt" / "mnist")) == ["7"]
    state, _, _ = restore_newest(str(workdir / "ckpt"), cfg)
    assert bool(steps.is_finite(state))


def test_skip_nonfinite_skips_updates_with_nan_gradients(tmp_path):
    nan_batch = jnp.full((32, 784), jnp.nan)
    for skip in (False, True):
        gan, state = steps.build(small_config(tmp_path, skip_nonfinite=skip))
        d_update = jax.jit(gan.d_update)  # as the training loop runs it (and one program, not an op at a time)
        new, _ = d_update(state, nan_batch, gan.sample_noise(jax.random.key(0), 32), jax.random.key(1))
        assert bool(steps.is_finite(new)) == skip
        if skip:
            assert leaves_equal(new.d_params, state.d_params)
        good, _ = d_update(new, nan_batch * 0, gan.sample_noise(jax.random.key(0), 32), jax.random.key(1))
        assert bool(steps.is_finite(good)) == skip


@pytest.mark.quick
def test_one_run_per_checkpoint_folder_and_stale_locks_are_taken_over(workdir, capsys):
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=1)
    lock = ckpt_lib.RunLock(str(workdir / "ckpt" / "mnist"))
    lock.acquire()  # this test process holds it, as a running trainer would
    with pytest.raises(ckpt_lib.CheckpointError, match=f"in use by process {os.getpid()}"):
        train_and_evaluate(cfg)
    lock.release()
    gone = subprocess.Popen(["true"])
    gone.wait()
    with open(lock.path, "w") as f:  # as left by a killed run
        f.write(f"{os.uname().nodename} {gone.pid}\n")
    train_and_evaluate(cfg)
    assert "removing a stale lock" in capsys.readouterr().out
    assert not os.path.exists(lock.path)


@pytest.mark.quick
def test_a_signal_during_an_epochs_last_chunk_resumes_to_exactly_the_uninterrupted_run(workdir, monkeypatch,
                                                                                      tmp_path_factory):
    # 7 steps per epoch in chunks of 4, 2 and the tail. The signal is sent from inside the loop the
    # moment the host reads the second chunk of epoch 2 — after the epoch's last chunk (the tail)
    # was dispatched and before the epoch's grid pass: the window a kill test hits only by chance.
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=4)
    advanced = {"steps": 0}
    real_advance = report.Reporter.advance

    def advance_then_signal(self, steps_done, *args):
        advanced["steps"] += steps_done
        if advanced["steps"] == 7 + 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_advance(self, steps_done, *args)

    monkeypatch.setattr(report.Reporter, "advance", advance_then_signal)
    with pytest.raises(Stopped, match="SIGTERM: stopped at step 14") as stopped:
        train_and_evaluate(cfg)
    monkeypatch.setattr(report.Reporter, "advance", real_advance)
    assert stopped.value.code == 143
    # The epoch was finished before the checkpoint: its grid and its scalars exist.
    assert (workdir / "samples" / "mnist" / "fake_images_2.png").exists()
    assert [s for s, _ in report.read_scalars(str(workdir / "runs" / "mnist"))["Generator_Loss"]] == [1, 2]
    resumed = train_and_evaluate(replace(cfg, resume=True))
    straight, straight_dir = uninterrupted(tmp_path_factory, 4)
    assert leaves_equal(resumed.g_stats, straight.g_stats)  # the grid pass moved them in both runs
    assert leaves_equal(resumed, straight)
    for epoch in (1, 2, 3, 4):
        grid = f"samples/mnist/fake_images_{epoch}.png"
        assert (workdir / grid).read_bytes() == (straight_dir / grid).read_bytes(), epoch
    assert [s for s, _ in report.read_scalars(str(workdir / "runs" / "mnist"))["Generator_Loss"]] == [1, 2, 3, 4]


def test_resume_refuses_another_dataset_of_other_size_or_content(workdir):
    cfg = small_config(workdir, data_dir=str(workdir / "data"), num_epochs=1)
    train_and_evaluate(cfg)
    for name, n, seed in (("bigger", 232, 0), ("other", 200, 5)):
        images, labels = blob_images(n, 28, 28, 1, seed=seed)
        write_mnist(str(workdir / name), images[..., 0], labels)
        with pytest.raises(ConfigError, match=f"trained on 200 images .* this run's data has {n} "):
            train_and_evaluate(replace(cfg, num_epochs=2, resume=True, data_dir=str(workdir / name)))
    assert sorted(os.listdir(workdir / "ckpt" / "mnist")) == ["7"]  # nothing written by the refusals


@beside.job("reliability: a second identical run", gb=0.45, prepare=workdir_in)
def run_twice(folder, run):
    """Two fresh processes, one after the other, on one compile cache of their own."""
    cache = os.path.join(folder, "xla-cache")
    out = []
    for outputs in ([], ["--ckpt_dir", "again", "--sample_dir", "s2", "--logdir", "r2"]):
        proc = run.spawn("jaxgan.train", *FLAGS, "--num_epochs", "1", "--compile_cache", cache, *outputs, cwd=folder)
        stdout, stderr = proc.communicate(timeout=300)
        out.append((proc.returncode, stdout, stderr))
    return folder, cache, out


@pytest.mark.beside("reliability: a second identical run")
def test_a_second_identical_run_compiles_nothing():
    folder, cache, ((code, out, err), (code2, out2, err2)) = beside.result("reliability: a second identical run")
    assert code == 0, err
    compiled = int(out.split("compiled ")[1].split()[0])
    assert compiled > 0
    assert code2 == 0, err2
    assert f"compiled 0 programs, read {compiled} from the compile cache in {cache}" in out2
    # Off: no line. A fresh process proves nothing more here (the command decides what it prints).
    off = run_main("jaxgan.train", *FLAGS, "--num_epochs", "1", "--compile_cache", "none",
                   "--ckpt_dir", "third", cwd=folder)
    assert off.returncode == 0 and "compile cache" not in off.stdout


@pytest.mark.quick
def test_the_environments_none_turns_the_compile_cache_off(tmp_path, monkeypatch):
    from jaxgan import runtime

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAXGAN_COMPILE_CACHE", "none")
    # (A folder here would also move this test process's own cache: only the off switch is tried.)
    assert runtime.setup("") is None and os.listdir(tmp_path) == []  # no folder named "none"
