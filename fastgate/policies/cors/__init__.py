"""CORS (`apis[].cors`): the gateway answers preflights itself and adds the CORS headers to
actual responses, for exactly the configured origins."""
