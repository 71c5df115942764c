"""Plot a run's loss curves (and mean D outputs) from its TensorBoard events.

    python scripts/plot_curves.py runs/mnist --out curves.png
"""

from __future__ import annotations

import argparse
import os
import sys

from jaxgan.report import read_scalars


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("events_dir", help="e.g. runs/mnist")
    p.add_argument("--out", default="curves.png")
    args = p.parse_args()
    scalars = read_scalars(args.events_dir)
    if "Discriminator_Loss" not in scalars:
        print(f"error: no jaxgan events in {args.events_dir!r}", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    for tag, label in (("Discriminator_Loss", "D loss"), ("Generator_Loss", "G loss")):
        ax1.plot(*zip(*sorted(dict(scalars[tag]).items())), label=label)
    ax1.axhline(2 * 0.6931, color="grey", ls=":", lw=1, label="2 log 2 (D = 1/2)")
    ax1.axhline(0.6931, color="grey", ls="--", lw=1, label="log 2")
    for tag, label in (("D_real_mean", "mean D(x)"), ("D_fake_mean", "mean D(G(z))")):
        ax2.plot(*zip(*sorted(dict(scalars[tag]).items())), label=label)
    ax2.axhline(0.5, color="grey", ls=":", lw=1)
    for ax, title in ((ax1, "losses per epoch"), (ax2, "discriminator outputs per epoch")):
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
