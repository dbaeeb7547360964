"""Policy units, one folder each (Kong's plugin unit): config compiled once, a handler per request."""
