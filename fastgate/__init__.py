"""fastgate: an API security gateway. Only authenticated, authorized, well-formed traffic passes."""

__version__ = "0.1.0"
