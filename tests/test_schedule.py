"""The loop's "what runs next" arithmetic (jaxgan.schedule), over the awkward cases. The expected
chunk lists are written out by hand from the rules, never computed by the code under test."""

import pytest

from jaxgan.config import from_dict
from jaxgan.data import epoch_layout
from jaxgan.schedule import chunks, next_chunk, run_length


def plan(n, batch, epochs, steps_per_call, ckpt_every=0, last_batch="partial", start=0):
    """(step, length, tail, ends_epoch, save) of every chunk from ``start``."""
    layout = epoch_layout(n, batch, last_batch)
    total = epochs * layout.steps_per_epoch
    return [(c.step, c.length, c.tail, c.ends_epoch, c.save)
            for c in chunks(start, layout, total, steps_per_call, ckpt_every)]


@pytest.mark.quick
def test_an_epoch_is_its_full_batches_in_chunks_then_the_tail():
    # 200 images, batch 32: 6 full batches and a tail of 8 -> 7 steps per epoch.
    assert plan(200, 32, 2, 4) == [
        (0, 4, False, False, False), (4, 2, False, False, False), (6, 1, True, True, True),
        (7, 4, False, False, False), (11, 2, False, False, False), (13, 1, True, True, True)]


def test_dropping_the_tail_and_a_tail_of_one_image():
    assert plan(200, 32, 1, 200, last_batch="drop") == [(0, 6, False, True, True)]
    # 193 = 6 x 32 + 1: a batch of one cannot train BatchNorm, so it is dropped even with partial.
    assert plan(193, 32, 1, 200) == [(0, 6, False, True, True)]


def test_ckpt_every_that_does_not_divide_an_epoch_counts_from_step_zero():
    # 7 steps per epoch, a checkpoint every 3 steps: after steps 3, 6, 9, 12 — plus each epoch's
    # end only when it is the run's end (14); 13 is no multiple of 3; chunks never cross a checkpoint or an epoch end.
    assert plan(200, 32, 2, 200, ckpt_every=3) == [
        (0, 3, False, False, True), (3, 3, False, False, True), (6, 1, True, True, False),
        (7, 2, False, False, True), (9, 3, False, False, True), (12, 1, False, False, False),
        (13, 1, True, True, True)]


@pytest.mark.quick
def test_a_resume_mid_epoch_plans_what_the_uninterrupted_run_does_from_there():
    straight = plan(200, 32, 2, 4, ckpt_every=3)
    for start in (3, 6, 9, 12):  # every checkpoint a resume can start from
        resumed = plan(200, 32, 2, 4, ckpt_every=3, start=start)
        assert resumed == [c for c in straight if c[0] >= start], start


def test_steps_per_call_caps_chunks_and_a_tail_is_always_alone():
    assert [c[1] for c in plan(1000, 10, 1, 30)] == [30, 30, 30, 10]
    assert plan(22, 10, 1, 1) == [(0, 1, False, False, False), (1, 1, False, False, False),
                                  (2, 1, True, True, True)]


def test_next_chunk_refuses_a_step_outside_the_run():
    layout = epoch_layout(200, 32, "partial")
    with pytest.raises(ValueError, match="outside"):
        next_chunk(14, layout, 14, 200)
    c = next_chunk(13, layout, 14, 200)
    assert (c.epoch, c.pos, c.end) == (1, 6, 14)


# -- WGAN: reporting periods of interval x n_critic steps, independent of the data epochs ---------
def wgan_plan(steps_per_call, ckpt_every=0, start=0):
    """200 images, batch 32, short batch dropped: 6 steps per epoch. n_critic 2, a period every 2
    generator iterations (4 steps), 5 generator iterations (10 steps): the last period is half.
    (step, length, ends_epoch, ends_period, save) of every chunk from ``start``."""
    layout = epoch_layout(200, 32, "drop")
    return [(c.step, c.length, c.ends_epoch, c.ends_period, c.save)
            for c in chunks(start, layout, 10, steps_per_call, ckpt_every, period=4)]


def test_wgan_chunks_stop_at_epoch_ends_period_ends_and_the_run_end():
    # Epoch ends at 6; period ends at 4, 8; the run (a partial period) ends at 10.
    assert wgan_plan(200) == [(0, 4, False, True, True), (4, 2, True, False, False),
                              (6, 2, False, True, True), (8, 2, False, True, True)]
    assert wgan_plan(3) == [(0, 3, False, False, False), (3, 1, False, True, True), (4, 2, True, False, False),
                            (6, 2, False, True, True), (8, 2, False, True, True)]


@pytest.mark.quick
def test_wgan_ckpt_every_adds_boundaries_and_replaces_per_period_saves():
    # Checkpoints after steps 3, 6, 9 and at the run's end (10); periods still end at 4, 8, 10.
    assert wgan_plan(200, ckpt_every=3) == [
        (0, 3, False, False, True), (3, 1, False, True, False), (4, 2, True, False, True),
        (6, 2, False, True, False), (8, 1, False, False, True), (9, 1, False, True, True)]
    straight = wgan_plan(200, ckpt_every=3)
    for start in (3, 6, 9):
        assert wgan_plan(200, ckpt_every=3, start=start) == [c for c in straight if c[0] >= start], start


def test_wgan_chunk_knows_its_period_and_place_in_it():
    layout = epoch_layout(200, 32, "drop")
    c = next_chunk(9, layout, 10, 200, 3, period=4)
    assert (c.period, c.period_pos, c.epoch, c.pos, c.end) == (2, 1, 1, 3, 10)
    c = next_chunk(6, layout, 10, 200, 0, period=4)
    assert (c.period, c.period_pos, c.epoch, c.pos) == (1, 2, 1, 0)


@pytest.mark.quick
def test_run_length_is_epochs_or_generator_iterations():
    layout = epoch_layout(200, 32, "partial")  # 7 steps per epoch
    assert run_length(from_dict({"num_epochs": 3}), layout) == (21, 7)
    assert run_length(from_dict({"model": "dcgan", "num_epochs": 3}), layout) == (21, 7)
    wgan = from_dict({"model": "wgan", "gen_iters": 20, "interval": 10, "d_steps": 5})
    assert run_length(wgan, epoch_layout(200, 32, "drop")) == (100, 50)
