"""Operator messages on stdout/stderr, one write(2) per line.

Invariant: a line is never split across writes, so lines from several worker processes sharing
one pipe never interleave inside each other (print() may write text and newline separately).
"""

from __future__ import annotations

import os
import sys


def say(message: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    try:
        stream.flush()
        os.write(stream.fileno(), (message + "\n").encode())
    except (OSError, ValueError):  # closed or redirected to something without a descriptor
        print(message, file=stream, flush=True)
