"""End-to-end support: cluster providers and the suite that runs on them."""
