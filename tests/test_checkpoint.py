"""Orbax checkpoints hold everything a resume needs; resuming is bit-exact."""

import os
import shutil

import jax
import pytest

from jaxgan import checkpoint as ckpt_lib
from jaxgan import steps
from jaxgan.config import ConfigError
from jaxgan.trainer import train_and_evaluate
from tests.conftest import leaves_equal, replace, small_config
from tests.uninterrupted import uninterrupted


@pytest.mark.quick
def test_checkpoint_round_trip_is_bit_exact(workdir):
    cfg = small_config(workdir, data_dir=str(workdir / "data"))
    state = train_and_evaluate(cfg)  # a trained state: every leaf, the optimisers' included, moved
    cks = ckpt_lib.Checkpoints(str(workdir / "ck"))
    cks.save(1, state, {"config": cfg.to_dict(), "note": "x"})
    _, template = steps.build(replace(cfg, seed=99))  # different values, same structure
    restored, record, step = cks.restore(template)
    cks.close()
    assert step == 1 and record["note"] == "x" and record["config"]["seed"] == cfg.seed
    assert leaves_equal(restored, state)
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)


@pytest.mark.quick
def test_restore_without_checkpoints_is_a_clear_error(tmp_path):
    cks = ckpt_lib.Checkpoints(str(tmp_path / "empty"))
    with pytest.raises(ckpt_lib.CheckpointError, match="no checkpoint"):
        cks.restore(steps.build(small_config(tmp_path))[1])


@pytest.mark.quick
def test_resume_is_bit_exact(workdir, tmp_path_factory):
    straight, straight_dir = uninterrupted(tmp_path_factory, 2)
    cfg_b = small_config(workdir / "b", data_dir=str(workdir / "data"), num_epochs=1)
    train_and_evaluate(cfg_b)
    resumed = train_and_evaluate(replace(cfg_b, num_epochs=2, resume=True))
    assert int(resumed.step) == int(straight.step) == 2 * 7  # 200 images: 6 batches of 32 + 8
    assert leaves_equal(resumed, straight)
    grid = "samples/mnist/fake_images_2.png"
    assert (straight_dir / grid).read_bytes() == (workdir / "b" / grid).read_bytes()


@pytest.mark.quick
def test_resume_from_the_middle_of_an_epoch_is_bit_exact(workdir, tmp_path_factory):
    straight, _ = uninterrupted(tmp_path_factory, 2)
    cfg_b = small_config(workdir / "b", data_dir=str(workdir / "data"), num_epochs=1, ckpt_every=3)
    train_and_evaluate(cfg_b)
    ck = workdir / "b" / "ckpt" / "mnist"
    assert sorted(int(p) for p in os.listdir(ck) if p.isdigit()) == [3, 6, 7]
    for later in ("6", "7"):  # as if the run had died just after step 3's checkpoint
        shutil.rmtree(ck / later)
    resumed = train_and_evaluate(replace(cfg_b, num_epochs=2, resume=True))
    assert leaves_equal(resumed, straight)


def test_resume_refuses_settings_that_change_the_model(workdir):
    cfg = small_config(workdir, data_dir=str(workdir / "data"))
    train_and_evaluate(cfg)
    with pytest.raises(ConfigError, match="latent_dim=8.*latent_dim=9"):
        train_and_evaluate(replace(cfg, resume=True, num_epochs=2, latent_dim=9))


@pytest.mark.quick
def test_a_new_run_never_overwrites_existing_checkpoints(workdir):
    cfg = small_config(workdir, data_dir=str(workdir / "data"))
    train_and_evaluate(cfg)
    folder = workdir / "ckpt" / "mnist" / "7"
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*"))
    with pytest.raises(ConfigError, match="already holds checkpoints; pass --resume"):
        train_and_evaluate(cfg)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*")) == before


def test_only_the_last_few_checkpoints_are_kept(workdir):
    train_and_evaluate(small_config(workdir, data_dir=str(workdir / "data"), num_epochs=4, keep_checkpoints=2))
    kept = sorted(int(p) for p in os.listdir(workdir / "ckpt" / "mnist") if p.isdigit())
    assert kept == [21, 28]
