"""Cluster providers: a local control plane built from Go modules, and kind."""
