"""mTLS identity: a client certificate verified in the handshake -> its application."""
