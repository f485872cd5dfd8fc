"""The operator's picture of the cluster: Kubernetes objects translated into the engine's model.

`translate` turns one object into the engine's dataclasses (pure functions, no I/O);
`cache.ClusterCache` keeps the latest translation of every watched object, remembers what
changed, and hands the scheduling loop a `ClusterState` built from it; `status` computes the
status a pool or a budget should show.
"""
