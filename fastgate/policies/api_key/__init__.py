"""API keys (`authentication: [api_key]`): a key in a header or query parameter -> its application."""
