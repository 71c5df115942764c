"""``python -m jaxgan.train``: parse the flags, set the process up, train; nothing else.

The loop itself is ``jaxgan.trainer``; this command turns its outcomes into exit codes and
one-line messages.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jaxgan import checkpoint as ckpt_lib
from jaxgan import parallel, runtime
from jaxgan.config import ConfigError, parse_args
from jaxgan.trainer import Stopped, train_and_evaluate


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        cache = runtime.setup(cfg.compile_cache)
        parallel.initialize(cfg.coordinator_address, cfg.num_processes, cfg.process_id)
        train_and_evaluate(cfg)
    except (ConfigError, ckpt_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Stopped as e:
        print(str(e), file=sys.stderr if e.code == 1 else sys.stdout, flush=True)
        return e.code
    except KeyboardInterrupt:
        print("interrupted twice: stopped without a final checkpoint; --resume continues from the last one",
              file=sys.stderr)
        return 130
    except OSError as e:
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        print(f"error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    if cache is not None and parallel.is_primary():
        compiled, cached = runtime.compile_counts()
        print(f"compiled {compiled} programs, read {cached} from the compile cache in {cache}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
