"""The only code that writes to the Kubernetes API: binds, evictions, status, Events, the Lease."""
