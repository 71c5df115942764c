"""Uninterrupted runs: the references that the resume tests compare with. Each length is trained
once per test process and shared by every test that compares with it (they only read it)."""

from jaxgan.formats import write_mnist
from jaxgan.trainer import train_and_evaluate
from tests.conftest import blob_images, small_config

_runs: dict = {}


def uninterrupted(tmp_path_factory, epochs: int):
    """``(final state, folder)`` of small_config's run of ``epochs`` epochs, never stopped, on the
    data of conftest's ``workdir`` (200 images: 7 steps an epoch); a grid and a checkpoint per epoch
    under ``folder``."""
    if epochs not in _runs:
        root = tmp_path_factory.mktemp(f"uninterrupted_{epochs}")
        images, labels = blob_images(200, 28, 28, 1)  # conftest's workdir data
        write_mnist(str(root / "data"), images[..., 0], labels)
        _runs[epochs] = train_and_evaluate(small_config(root, data_dir=str(root / "data"), num_epochs=epochs)), root
    return _runs[epochs]
