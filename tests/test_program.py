"""One compiled run (jaxgan.program): built once per configuration and process, shared by the
trainer and the benchmarks, and dispatched with no implicit host-to-device copy."""

import dataclasses
import os
import re
import sys

import jax
import numpy as np
import pytest

from jaxgan import parallel, program
from jaxgan.trainer import no_host_arrays
from tests.conftest import REPO, replace, small_config

pytestmark = pytest.mark.quick


def test_runs_that_differ_only_in_folders_or_length_share_one_program(tmp_path):
    cfg = small_config(tmp_path)
    first = program.compile_run(cfg)
    same = program.compile_run(replace(cfg, ckpt_dir=str(tmp_path / "other"), num_epochs=7, resume=True,
                                       interval=3, ckpt_every=5))
    assert same is first
    for change in (dict(seed=cfg.seed + 1), dict(lr=1e-3), dict(steps_per_call=3), dict(batch_size=16)):
        assert program.compile_run(replace(cfg, **change)) is not first, change


def test_an_accidental_host_array_in_the_step_fails_loudly(tmp_path):
    cfg = small_config(tmp_path)
    prog = program.compile_run(cfg)
    data = jax.device_put({"images": np.zeros((64, 784), np.uint8)}, prog.replicated)

    def scalar(v):
        return jax.device_put(np.int32(v), prog.replicated)

    state = parallel.put(prog.initial_state, prog.state_sharding)  # explicitly, before the hot loop
    with no_host_arrays():
        perm = prog.permutations(scalar(0), 64)
        state, metrics = prog.chunk(state, data, perm, scalar(0), scalar(2))  # all on the device: runs
        assert int(jax.device_get(state.step)) == 2
        with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
            prog.chunk(state, data, np.asarray(jax.device_get(perm)), scalar(0), scalar(2))  # a host perm
        with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
            prog.chunk(state, data, perm, 0, scalar(2))  # a Python int where a device scalar belongs
    metrics = parallel.to_host(metrics)  # host reads are explicit device_gets
    assert metrics["d_loss"].shape == (cfg.steps_per_call,) and np.all(metrics["d_loss"][2:] == 0)


@pytest.mark.parametrize("where", ["dispatch", "permutations"])
def test_the_trainer_dispatches_under_the_guard(workdir, monkeypatch, where):
    # The trainer itself, not a copy of its guard: one per-chunk scalar left on the host (where
    # it dispatches a chunk, or where it draws an epoch's permutation) must stop the run.
    from jaxgan import trainer

    put_scalar, dispatch = trainer.Trainer.scalar, trainer.Trainer.dispatch
    inside = {"dispatch": False}

    def in_dispatch(self, *args):
        inside["dispatch"] = True
        try:
            return dispatch(self, *args)
        finally:
            inside["dispatch"] = False

    def scalar(self, value):
        host = inside["dispatch"] == (where == "dispatch")
        return np.int32(value) if host else put_scalar(self, value)

    monkeypatch.setattr(trainer.Trainer, "dispatch", in_dispatch)
    monkeypatch.setattr(trainer.Trainer, "scalar", scalar)
    with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
        trainer.train_and_evaluate(small_config(workdir))


def _recording(cfg):
    """``cfg`` as an instance of a Config subclass that records every field that code reads (copies
    made by dataclasses.replace, as a population makes its members', record into the same set;
    the copying itself, and dataclass-generated methods, read every field and are not counted)."""
    read: set[str] = set()

    class Recorded(type(cfg)):
        def __getattribute__(self, name):
            caller = sys._getframe(1).f_code.co_filename
            if not name.startswith("_") and not caller.endswith("dataclasses.py") and caller != "<string>":
                read.add(name)
            return super().__getattribute__(name)

    return Recorded(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}), read


@pytest.mark.parametrize("flags", [{"model": "mlp"}, {"model": "mlp", "population": 2},
                                   *({"model": m, "g_hidden": (64, 32, 16, 8), "d_hidden": (8, 16, 32, 64)}
                                     for m in ("dcgan", "wgan", "wgan_gp"))], ids=lambda f: "-".join(map(str, f.values()))[:24])
def test_the_compiled_program_reads_no_run_only_field(flags):
    # Programs are shared by runs whose configs differ only in run-only fields (config.program_key):
    # a field the program reads but that is marked run-only would hand one run another's program.
    # Trace every function of the program (no compile) with a config that records what is read.
    from jaxgan.config import RUN_ONLY_FIELDS, from_dict

    cfg = from_dict({"batch_size": 32, "latent_dim": 8, **flags})
    recorded, read = _recording(cfg)
    prog = program._compile_run.__wrapped__(recorded, parallel.data_mesh(), True)
    c, h, w = cfg.image_shape
    data = {"images": jax.ShapeDtypeStruct((64, c * h * w), np.uint8)}
    i32 = jax.ShapeDtypeStruct((), np.int32)
    perm = jax.eval_shape(prog.permutations, i32, 64)
    prog.chunk.trace(prog.initial_state, data, perm, i32, i32)
    prog.tail.trace(prog.initial_state, data, perm, 32)
    prog.grid.trace(prog.initial_state, jax.eval_shape(prog.fixed_noise))
    assert {"g_hidden", "latent_dim", "batch_size"} <= read  # it records the program's reads
    assert not read & set(RUN_ONLY_FIELDS), sorted(read & set(RUN_ONLY_FIELDS))


def test_the_trainer_and_the_benchmarks_build_their_programs_in_one_place():
    # Whoever jits a training chunk, tail or grid outside jaxgan/program.py re-assembles the program
    # by hand and times (or trains) a cousin of it.
    pattern = re.compile(r"jax\.jit\([^)]*\.(train_chunk|train_tail|grid)\b")
    hits = []
    for top in ("jaxgan", "benchmarks"):
        for folder, _, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                if name.endswith(".py") and name != "program.py":
                    with open(os.path.join(folder, name), encoding="utf-8") as f:
                        hits += [f"{name}: {ln.strip()}" for ln in f if pattern.search(ln)]
    assert hits == []
    with open(os.path.join(REPO, "jaxgan", "trainer.py"), encoding="utf-8") as f:
        assert "program.compile_run(" in f.read()
    for script in ("bench_row.py", "population_memory.py"):
        with open(os.path.join(REPO, "benchmarks", script), encoding="utf-8") as f:
            assert "program.compile_run(" in f.read(), script
