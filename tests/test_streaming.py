"""Beyond --data_budget the images stay on the host and each chunk's batches are gathered there and
sent ahead (jaxgan.stream): the run is the device-resident run bit for bit, resumes exactly, and
never holds more than the budget of images on the device."""

import gc
import os
import shutil
import types

import jax
import numpy as np
import pytest

from jaxgan import stream as stream_lib
from jaxgan import trainer
from jaxgan.config import ConfigError
from tests.conftest import TRAIN_FLAGS, leaves_equal, replace, run_main, small_config

# conftest's workdir: 200 images of 28x28 (156,800 bytes); steps_per_call 2 x batch 32: a chunk of
# 50,176 bytes. The budget sits between two chunks and the dataset.
BUDGET = 120_000
IMAGE_BYTES = 200 * 28 * 28


class Watched(trainer.Trainer):
    """The trainer itself, watched at each chunk's dispatch: the uint8 buffers alive on the device
    then (the chunk's own batches, the next chunk's being sent, and anything else left there)."""

    seen: list = []
    events: list = []  # ("dispatch", chunk), ("read", keep), ("ahead", chunk), ("take", chunk, sent ahead?)

    def dispatch(self, state, chunk, data, perm):
        live = [a.nbytes for a in jax.live_arrays() if a.dtype == np.uint8]
        Watched.seen.append((max(live, default=0), sum(live), data["images"].nbytes))
        Watched.events.append(("dispatch", chunk))
        return super().dispatch(state, chunk, data, perm)

    def read(self, pending, means, speed, keep=0):
        Watched.events.append(("read", keep))  # keep=1: the newest chunk is left running
        return super().read(pending, means, speed, keep)


def watch_the_stream(mp):
    """Record each chunk the stream is asked to gather ahead, and whether ``take`` found it so."""
    ahead, take = stream_lib.Stream.ahead, stream_lib.Stream.take

    def watched_ahead(self, chunk):
        if chunk is not None:
            Watched.events.append(("ahead", chunk))
        return ahead(self, chunk)

    def watched_take(self, chunk):
        Watched.events.append(("take", chunk, chunk in self._ahead))
        return take(self, chunk)

    mp.setattr(stream_lib.Stream, "ahead", watched_ahead)
    mp.setattr(stream_lib.Stream, "take", watched_take)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The device-resident run of 2 epochs (7 steps each: 6 batches of 32 and one of 8) and the
    same run streamed under the budget, watched."""
    from jaxgan.formats import write_mnist
    from tests.conftest import blob_images

    root = tmp_path_factory.mktemp("streaming")
    images, labels = blob_images(200, 28, 28, 1)
    write_mnist(str(root / "data"), images[..., 0], labels)
    cfg = small_config(root / "resident", data_dir=str(root / "data"), num_epochs=2, steps_per_call=2)
    resident = trainer.train_and_evaluate(cfg)
    gc.collect()  # the resident run's dataset is gone with its trainer
    Watched.seen, Watched.events = [], []
    streamed_cfg = replace(cfg, ckpt_dir=str(root / "streamed" / "ckpt"), sample_dir=str(root / "streamed" / "s"),
                           logdir=str(root / "streamed" / "runs"), data_budget=str(BUDGET), ckpt_every=3,
                           keep_checkpoints=10)
    with pytest.MonkeyPatch.context() as mp:
        watch_the_stream(mp)
        streamed = trainer.train_and_evaluate(streamed_cfg, Watched)
    return types.SimpleNamespace(root=root, cfg=cfg, resident=resident, streamed_cfg=streamed_cfg, streamed=streamed,
                                 seen=list(Watched.seen), events=list(Watched.events))


def test_a_streamed_run_is_the_resident_run_bit_for_bit(runs):
    assert int(runs.streamed.step) == int(runs.resident.step) == 14
    assert leaves_equal(runs.streamed, runs.resident)


def test_a_streamed_run_never_holds_more_than_the_budget_of_images_on_the_device(runs):
    seen = runs.seen
    assert len(seen) == 10  # per epoch 5 chunks: up to 2 batches, none across a checkpoint (every 3 steps), the tail
    chunk = 2 * 32 * 28 * 28
    assert sorted({own for _, _, own in seen}) == [8 * 28 * 28, chunk]  # each chunk brought its own batches
    assert max(biggest for biggest, _, _ in seen) <= chunk < BUDGET < IMAGE_BYTES
    assert max(total for _, total, _ in seen) <= BUDGET


def test_a_streamed_run_resumes_from_the_middle_of_an_epoch_bit_for_bit(runs):
    resident, streamed_cfg = runs.resident, runs.streamed_cfg
    ck = os.path.join(streamed_cfg.ckpt_dir, "mnist")
    for later in sorted((p for p in os.listdir(ck) if p.isdigit() and int(p) > 10), key=int):
        shutil.rmtree(os.path.join(ck, later))  # as if the run had died after step 9's checkpoint (epoch 2, batch 2)
    resumed = trainer.train_and_evaluate(replace(streamed_cfg, resume=True))
    assert leaves_equal(resumed, resident)


def test_each_chunk_after_the_first_was_gathered_while_the_one_before_ran(runs):
    # The trainer asks for chunk k+1 right after dispatching chunk k (asynchronous: chunk k is
    # then computing), with only a read that leaves chunk k running in between, and take(k+1)
    # finds it sent ahead; only the run's first chunk is gathered on the spot. Keyed on the order
    # of events, not on the clock.
    events = runs.events
    dispatched = [e[1] for e in events if e[0] == "dispatch"]
    takes = [e for e in events if e[0] == "take"]
    assert len(dispatched) == len(takes) == 10
    assert [prefetched for _, _, prefetched in takes] == [False] + [True] * 9
    for k, (this, upcoming) in enumerate(zip(dispatched, dispatched[1:])):
        i = events.index(("dispatch", this))
        assert events[i + 1:i + 3] == [("read", 1), ("ahead", upcoming)], (k, events[i:i + 4])


def test_a_budget_under_two_chunks_is_refused(runs):
    root, cfg = runs.root, runs.cfg
    folders = {k: str(root / "refused" / k) for k in ("ckpt_dir", "sample_dir", "logdir")}
    with pytest.raises(ConfigError, match="two chunks of --steps_per_call 2 x batch 32 take 100,352 bytes"):
        trainer.train_and_evaluate(replace(cfg, **folders, data_budget="100000"))
    assert not (root / "refused").exists()  # refused before any folder of the run was made


@pytest.mark.parametrize("value", ["0", "-1", "lots", "12X", "inf"])
def test_bad_budgets_are_one_line_and_exit_2(tmp_path, value):
    proc = run_main("jaxgan.train", *TRAIN_FLAGS, "--data_budget", value, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--data_budget must be auto or a positive size" in proc.stderr


def test_the_fingerprint_is_the_hash_of_all_the_bytes_read_a_block_at_a_time():
    # Checkpoints saved before the fingerprint was streamed record hashes of tobytes(): they still resume.
    import hashlib

    from jaxgan import data as data_lib

    images = np.random.default_rng(0).integers(0, 256, (10, 5, 5, 3)).astype(np.uint8)
    whole = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    assert data_lib.fingerprint(images) == data_lib.fingerprint(images, rows=3) == whole


def test_the_dataset_cache_is_memory_mapped_and_a_damaged_one_rebuilt(tmp_path):
    # The one host copy of a large dataset is the system's file cache: load_numpy maps its .npz
    # (members stored uncompressed) instead of reading it into the process.
    import glob

    from jaxgan import data as data_lib
    from jaxgan.formats import write_mnist
    from tests.conftest import blob_images

    images, labels = blob_images(40, 28, 28, 1)
    raw = write_mnist(str(tmp_path), images[..., 0], labels)
    for _ in range(2):  # built, then read back
        got, got_labels = data_lib.load_numpy("mnist", str(tmp_path), download=False)
        assert isinstance(got, np.memmap) and isinstance(got_labels, np.memmap)
        np.testing.assert_array_equal(got, images)
        np.testing.assert_array_equal(got_labels, labels)
    (cache,) = glob.glob(os.path.join(raw, "jaxgan-train-*.npz"))
    del got, got_labels
    with open(cache, "r+b") as f:
        f.truncate(os.path.getsize(cache) // 2)
    got, _ = data_lib.load_numpy("mnist", str(tmp_path), download=False)
    np.testing.assert_array_equal(got, images)


def test_the_resident_dataset_is_sent_a_block_at_a_time_into_one_array():
    # No flattened host copy of the whole dataset: blocks of rows go into one device array.
    from jaxgan import data as data_lib
    from jaxgan import parallel

    images = np.random.default_rng(0).integers(0, 256, (23, 4, 5, 3)).astype(np.uint8)
    mesh = parallel.data_mesh()
    blocks = data_lib.put_dataset(images, mesh, labels=np.arange(23), rows=10)  # 10 + 10 + 3 rows
    whole = data_lib.put_dataset(images, mesh, labels=np.arange(23))
    assert leaves_equal(blocks, whole) and list(blocks) == list(whole)
    np.testing.assert_array_equal(np.asarray(blocks["images"]), data_lib.flatten_chw(images))


def test_a_chunk_gathers_each_members_rows_and_labels_as_the_resident_steps_would(tmp_path):
    # What the compiled chunk reads, batch by batch, from a streamed chunk (identity order, from 0)
    # is what it reads from the resident dataset in the epoch's order from the chunk's first batch:
    # for a population, K members' row sets, each member's in its own order (K times a solo run's
    # traffic). A whole streamed population run would cost a population program's compile here;
    # the vmapped chunk reads each member's rows through the same take_rows as below.
    from jaxgan import data as data_lib
    from jaxgan import parallel, schedule, stream

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (50, 3, 2, 3)).astype(np.uint8), rng.integers(0, 10, 50)
    layout, mesh = data_lib.epoch_layout(50, 8, "partial"), parallel.data_mesh()
    cfg = small_config(tmp_path, batch_size=8, steps_per_call=2, population=2, conditional=True)
    perms = np.stack([rng.permutation(50), rng.permutation(50)]).astype(np.int32)
    rep = parallel.replicated(mesh)
    feed = stream.Stream(cfg, images, labels, layout, mesh, rep, lambda epoch: jax.device_put(perms, rep))
    resident = data_lib.put_dataset(images, mesh, labels=labels)
    try:
        for chunk in (schedule.Chunk(step=8, length=1, epoch=1, pos=2, tail=False, ends_epoch=False, save=False),
                      schedule.Chunk(step=12, length=1, epoch=1, pos=6, tail=True, ends_epoch=True, save=False)):
            feed.ahead(chunk)
            data, ident = feed.take(chunk)
            for k in range(2):
                rows = perms[k, chunk.pos * 8:chunk.pos * 8 + (2 if chunk.tail else 8)]
                got = data_lib.take_rows(data, np.asarray(ident)[k][:len(rows)])
                assert leaves_equal(got, data_lib.take_rows(resident, rows))
    finally:
        feed.close()
