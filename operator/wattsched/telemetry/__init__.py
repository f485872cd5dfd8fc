"""Measured power from Prometheus' HTTP API, as plain per-node readings for the pure core.

`readings` builds the one query a pool needs per interval and turns its answer into readings;
`prometheus` sends it, with a timeout. A failed, absent or stale answer is no reading: the node
then counts at nameplate (DESIGN.md §2b), so an outage never admits more than the ledger would.
"""
