"""Units of the config file: durations ("250ms", "10s", "5m", "1h", "1d", or seconds) and sizes
("512", "16KiB", "8MiB", "1GiB", or bytes).

Invariant: the parsers accept exactly the documented grammar and return None for anything else
(they never guess); whatever format_duration / format_size print parses back to the same value.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)?")
_SECONDS_PER = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_SIZE = re.compile(r"([0-9]+)(B|KiB|MiB|GiB)?")
_BYTES_PER = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_duration(value: object) -> float | None:
    """Seconds as a float, or None. Decimal arithmetic so "0.1s" * 3 never drifts."""
    if isinstance(value, bool):  # YAML `yes`/`on` are booleans, never a duration
        return None
    if isinstance(value, int):
        return float(value) if value >= 0 else None
    if isinstance(value, float):
        return value if math.isfinite(value) and value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value)
    if match is None:
        return None
    seconds = float(Decimal(match[1]) * _SECONDS_PER[match[2] or "s"])
    return seconds if math.isfinite(seconds) else None


def parse_size(value: object) -> int | None:
    """Bytes as an int, or None. Only binary suffixes: "KB" would be ambiguous (1000 or 1024)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _SIZE.fullmatch(value)
    if match is None:
        return None
    return int(match[1]) * _BYTES_PER[match[2] or "B"]


def format_duration(seconds: float) -> str:
    """The shortest unit string for `seconds` that parses back exactly (for messages and docs)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        count = seconds / float(_SECONDS_PER[unit])
        if count.is_integer():
            text = f"{int(count)}{unit}"
            if parse_duration(text) == seconds:
                return text
    text = f"{round(seconds * 1000)}ms"
    if parse_duration(text) == seconds:
        return text
    return f"{Decimal(seconds):f}"  # the exact binary value, as a plain number of seconds


def format_size(size: int) -> str:
    """The largest binary unit that divides `size` exactly, else plain bytes."""
    if size < 0:
        raise ValueError(f"not a size: {size!r}")
    for unit in ("GiB", "MiB", "KiB"):
        if size and size % _BYTES_PER[unit] == 0:
            return f"{size // _BYTES_PER[unit]}{unit}"
    return str(size)
