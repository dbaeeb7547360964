"""Real processes for the bench tests: the dev PKI and gateways from tests/integration."""

from tests.integration.conftest import pki, start_gateway  # noqa: F401  (fixtures)
