"""wattsched: a power-aware Kubernetes scheduler operator for AI data centres."""

__version__ = "0.1.0"
