"""Data parallelism: 4 simulated CPU devices equal 1 device; two processes joined by
jax.distributed train one run; checkpoints move between topologies."""

import os
import socket

import jax
import numpy as np

from jaxgan import steps
from jaxgan.trainer import train_and_evaluate
from tests.conftest import TRAIN_FLAGS, replace, restore_newest, small_config, spawn

FLAGS = [*TRAIN_FLAGS, "--data_dir", "data"]


def launch(cwd, *args, devices=4):
    return spawn("jaxgan.train", *FLAGS, *args, cwd=cwd, env={
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"})


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def assert_close(a, b, atol=2e-4):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-3)


def test_four_devices_equal_one_device_and_restore_on_one(workdir):
    # 200 images, batch 32: six full batches split 8 per device, and the short batch of 8.
    out = finish(launch(str(workdir), "--num_epochs", "2", "--last_batch", "drop"))
    assert "on 4 cpu devices" in out
    cfg = small_config(workdir / "one", data_dir=str(workdir / "data"), num_epochs=2, last_batch="drop")
    one = train_and_evaluate(cfg)
    four, record, step = restore_newest(str(workdir / "checkpoints"), cfg)  # written on 4, read on 1
    assert step == int(one.step) == 12
    # Same mathematics, other summation order: equal to float tolerance, not bit for bit.
    assert_close(four.g_params, one.g_params)
    assert_close(four.d_params, one.d_params)
    assert_close(four.g_stats, one.g_stats)


def test_batch_that_does_not_divide_by_the_devices_is_refused(workdir):
    proc = launch(str(workdir), "--batch_size", "30")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert "batch_size 30 does not divide by the 4 devices" in err and len(err.strip().splitlines()) == 1


def test_checkpoint_from_one_device_resumes_on_four(workdir):
    cfg = replace(small_config(workdir, data_dir=str(workdir / "data"), num_epochs=1),
                  ckpt_dir=str(workdir / "checkpoints"))
    train_and_evaluate(cfg)
    out = finish(launch(str(workdir), "--num_epochs", "2", "--resume"))
    assert "resumed from" in out and "(step 7)" in out and "on 4 cpu devices" in out
    state, _, step = restore_newest(str(workdir / "checkpoints"), cfg)
    assert step == 14 and bool(steps.is_finite(state))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_run(workdir):
    address = f"127.0.0.1:{_free_port()}"
    procs = [launch(str(workdir), "--num_epochs", "2", "--coordinator_address", address,
                    "--num_processes", "2", "--process_id", str(i), devices=2) for i in range(2)]
    outs = [finish(p) for p in procs]
    assert "on 4 cpu devices (cpu) in 2 processes" in outs[0]
    assert "epoch 2/2" in outs[0] and "epoch" not in outs[1]  # only process 0 reports
    assert sorted(os.listdir(workdir / "checkpoints" / "mnist")) == ["14", "7"]
    assert sorted(os.listdir(workdir / "samples" / "mnist")) == ["fake_images_1.png", "fake_images_2.png"]
    cfg = small_config(workdir / "one", data_dir=str(workdir / "data"), num_epochs=2)
    one = train_and_evaluate(cfg)
    two, _, _ = restore_newest(str(workdir / "checkpoints"), cfg)
    assert_close(two.g_params, one.g_params)
    # --resume works across processes as well.
    address = f"127.0.0.1:{_free_port()}"
    procs = [launch(str(workdir), "--num_epochs", "3", "--resume", "--coordinator_address", address,
                    "--num_processes", "2", "--process_id", str(i), devices=2) for i in range(2)]
    outs = [finish(p) for p in procs]
    assert "resumed from" in outs[0] and "epoch 3/3" in outs[0]
    assert max(int(p) for p in os.listdir(workdir / "checkpoints" / "mnist") if p.isdigit()) == 21


def test_a_population_splits_its_members_over_devices_and_processes(workdir):
    # 4 members on 4 simulated devices: each device trains one whole member.
    out = finish(launch(str(workdir), "--population", "4", "--num_epochs", "1"))
    assert "a population of 4 split over the devices" in out
    cfg = small_config(workdir / "one", data_dir=str(workdir / "data"), num_epochs=1, population=4)
    one = train_and_evaluate(cfg)  # the same population on one device
    four, _, step = restore_newest(str(workdir / "checkpoints"), cfg)
    assert step == 7
    assert_close(four.g_params, one.g_params)
    assert_close(four.d_params, one.d_params)
    # Two processes of two devices each, one checkpoint between them.
    address = f"127.0.0.1:{_free_port()}"
    procs = [launch(str(workdir), "--population", "4", "--num_epochs", "1", "--ckpt_dir", "two",
                    "--coordinator_address", address, "--num_processes", "2", "--process_id", str(i), devices=2)
             for i in range(2)]
    outs = [finish(p) for p in procs]
    assert "a population of 4 split over the devices" in outs[0] and "in 2 processes" in outs[0]
    two, _, _ = restore_newest(str(workdir / "two"), cfg)
    assert_close(two.g_params, one.g_params)
    # 3 members do not divide by 4 devices: every device runs all three.
    out = finish(launch(str(workdir), "--population", "3", "--num_epochs", "1", "--ckpt_dir", "three"))
    assert "a population of 3 on every device" in out
