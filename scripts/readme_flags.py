"""Rewrite README.md's flag table from the flag declarations in jaxgan/config.py.

    python scripts/readme_flags.py          # update README.md in place
    python scripts/readme_flags.py --check  # exit 1 if README.md is out of date

The table sits between ``<!-- flags:begin -->`` and ``<!-- flags:end -->``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan.config import flag_table  # noqa: E402

BEGIN, END = "<!-- flags:begin -->", "<!-- flags:end -->"
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def updated(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{flag_table()}\n{END}{tail}"


if __name__ == "__main__":
    with open(README, encoding="utf-8") as f:
        text = f.read()
    new = updated(text)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if new == text else 1)
    with open(README, "w", encoding="utf-8") as f:
        f.write(new)
