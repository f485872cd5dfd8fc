"""The running operator: kopf handlers that feed the cache, and the one scheduling loop."""
