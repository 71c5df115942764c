"""Fingerprint a finished run: SHA-256 of every array of its newest checkpoint, of its grids and
of its TensorBoard scalars, so that two checkouts' runs can be compared bit for bit.

    python -m scripts.run_digest checkpoints/dcgan/mnist --samples samples/dcgan/mnist \
        --events runs/dcgan/mnist --json digest.json

It reads the checkpoint with Orbax alone (no jaxgan template), so the same script fingerprints
runs made by any commit; used to show that a refactor leaves every family's training unchanged.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys

import numpy as np


def array_digests(ckpt_folder: str) -> tuple[int, dict[str, str]]:
    import orbax.checkpoint as ocp

    steps = sorted(int(p) for p in os.listdir(ckpt_folder) if p.isdigit())
    if not steps:
        raise SystemExit(f"error: no checkpoint in {ckpt_folder}")
    path = os.path.join(os.path.abspath(ckpt_folder), str(steps[-1]), "state")
    arrays = ocp.PyTreeCheckpointer().restore(path)
    return steps[-1], {k: hashlib.sha256(np.ascontiguousarray(np.asarray(v)).tobytes()).hexdigest()[:16]
                       for k, v in sorted(arrays.items())}


def file_digests(folder: str, pattern: str) -> dict[str, str]:
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", pattern), recursive=True)):
        with open(path, "rb") as f:
            out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()[:16]
    return out


def scalar_digest(events: str) -> dict[str, str]:
    from jaxgan.report import read_scalars

    return {tag: hashlib.sha256(repr(values).encode()).hexdigest()[:16]
            for tag, values in sorted(read_scalars(events).items()) if tag != "images_per_second"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ckpt_folder", help="the run's checkpoint folder, e.g. checkpoints/mnist")
    p.add_argument("--samples", help="the run's grid folder")
    p.add_argument("--events", help="the run's TensorBoard folder (images_per_second is left out: a timing)")
    p.add_argument("--json", help="write the digests here")
    args = p.parse_args()
    step, arrays = array_digests(args.ckpt_folder)
    out = {"step": step, "arrays": arrays,
           "grids": file_digests(args.samples, "*.png") if args.samples else {},
           "scalars": scalar_digest(args.events) if args.events else {}}
    out["all"] = hashlib.sha256(json.dumps({k: out[k] for k in ("arrays", "grids", "scalars")},
                                           sort_keys=True).encode()).hexdigest()[:16]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
    print(f"step {step}: {len(arrays)} arrays, {len(out['grids'])} grids, {len(out['scalars'])} scalar tags; "
          f"digest {out['all']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
