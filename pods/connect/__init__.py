"""Connecting to pods: the HTTP and WebSocket proxy, the web terminal, SSH keys and registry
credentials. Views, consumers and the ASGI dispatcher live here; the Pod rows they act on are in
pods.models."""
