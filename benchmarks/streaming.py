"""What streaming the data costs (``--data_budget``, ``jaxgan.stream``): the same run of the
reference MLP GAN, device-resident and streamed (each chunk's batches gathered on the host and
sent ahead), in turns, in this process; wall time of whole ``train_and_evaluate`` runs after one
untimed run of each has compiled both programs.

    python -m benchmarks.streaming --json benchmarks/results/streaming_cpu.json

On a CPU the "device" is host memory, so this measures the gather and copy the stream adds
(``--data_budget auto`` never streams there); on a GPU it also overlaps a host-to-device copy.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    from jaxgan.config import Config, OneLineParser, validate

    p = OneLineParser(prog="python -m benchmarks.streaming", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=12800, help="MNIST-sized images (default %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default %(default)s)")
    p.add_argument("--steps_per_call", type=int, default=50, help="steps per chunk (default %(default)s)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed run (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="timed runs of each mode, in turns (default %(default)s)")
    p.add_argument("--json", default=None, help="write the result here (default: print only)")
    p.add_argument("--smoke", action="store_true", help="the docs' tiny-size override, not a figure: the test suite's "
                   "streaming run (200 images, batch 32, 2 steps per chunk, widths 16,32 / 32,16, latent 8), 1 epoch, "
                   "1 round")
    args = p.parse_args(argv)
    # The reference MLP's widths (Config's defaults); the smoke run's are tests/test_streaming.py's,
    # so that in the suite XLA's persistent cache compiles the programs they share once.
    widths = {}
    if args.smoke:
        args.images, args.batch, args.steps_per_call, args.epochs, args.rounds = 200, 32, 2, 1, 1
        widths = dict(g_hidden=(16, 32), d_hidden=(32, 16), latent_dim=8)
    if args.json and (not args.json.endswith(".json") or not os.path.isdir(os.path.dirname(os.path.abspath(args.json)))):
        p.error(f"--json {args.json!r} must be a .json path in an existing folder")
    if min(args.images, args.batch, args.steps_per_call, args.epochs, args.rounds) < 1:
        p.error("every count must be positive")

    import jax

    from benchmarks.harness import cpu_model
    from benchmarks.synthetic import write_dataset
    from jaxgan import runtime
    from jaxgan.data import epoch_layout
    from jaxgan.trainer import train_and_evaluate

    runtime.setup()
    chunk = args.steps_per_call * args.batch * 784
    budget = 2 * chunk  # streams: two chunks fit, the dataset does not
    if args.images * 784 <= budget:
        p.error(f"--images {args.images} fit in two chunks ({budget:,} bytes): nothing would stream")
    root = tempfile.mkdtemp(prefix="jaxgan-streaming-")
    write_dataset(os.path.join(root, "data"), args.images)
    times: dict[str, list[float]] = {"resident": [], "streamed": []}
    runs = 0

    def run(mode: str) -> float:
        nonlocal runs
        runs += 1
        out = os.path.join(root, f"run{runs}")
        cfg = validate(Config(**widths, data_dir=os.path.join(root, "data"), download=False, batch_size=args.batch,
                              num_epochs=args.epochs, steps_per_call=args.steps_per_call, progress=False,
                              sample_dir=os.path.join(out, "s"), logdir=os.path.join(out, "r"),
                              ckpt_dir=os.path.join(out, "c"),
                              data_budget="auto" if mode == "resident" else str(budget)))
        t = time.perf_counter()
        jax.block_until_ready(train_and_evaluate(cfg))
        return time.perf_counter() - t

    load = []
    try:
        for mode in times:  # compile both programs, untimed
            run(mode)
        for _ in range(args.rounds):
            for mode in times:
                times[mode].append(run(mode))
                load.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {m: statistics.median(v) for m, v in times.items()}
    layout = epoch_layout(args.images, args.batch, "partial")
    images = (layout.full * args.batch + layout.tail) * args.epochs  # trained on per run
    out = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": "python -m benchmarks.streaming " + " ".join(argv if argv is not None else sys.argv[1:]),
           "backend": jax.default_backend(), "device": jax.devices()[0].device_kind, "cpu": cpu_model(),
           "cpu_count": os.cpu_count(), "jax": jax.__version__, "model": "mlp",
           **{k: getattr(Config(**widths), k) for k in ("g_hidden", "d_hidden", "latent_dim")}, "images": args.images,
           "batch": args.batch, "steps_per_call": args.steps_per_call, "epochs": args.epochs,
           "data_budget": budget, "chunk_bytes": chunk, "seconds": times, "median_s": med,
           "img_per_s": {m: images / s for m, s in med.items()},
           "streamed_over_resident": med["streamed"] / med["resident"],
           "load_average_1min": {"mean": statistics.mean(load), "max": max(load)}}
    print(json.dumps({k: out[k] for k in ("median_s", "img_per_s", "streamed_over_resident")}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
