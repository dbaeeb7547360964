"""The gateway configuration: YAML file -> validated, frozen `Config` (see model.py).

Invariant: the rest of fastgate gets a Config only through load_config, so it never sees an
unvalidated value; a bad file is a ConfigError listing "FILE:LINE: key.path: message" lines.
"""

from .loader import ConfigError, load_config
from .model import Config
from .units import format_duration, format_size, parse_duration, parse_size

__all__ = [
    "Config",
    "ConfigError",
    "format_duration",
    "format_size",
    "load_config",
    "parse_duration",
    "parse_size",
]
