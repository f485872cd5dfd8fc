"""Scheduler configuration: the few knobs an operator of the operator may want to turn."""

from __future__ import annotations

from dataclasses import dataclass

from wattsched.domain import HALL_LABEL, RACK_LABEL


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    """Weights of the Score plugins; 0 switches a plugin off (and saves its cost)."""

    device_packing: int = 1  # fill the fullest fitting node first, leaving whole nodes free
    gang_topology: int = 2  # keep a gang on one rack, else one hall
    power_headroom: int = 0  # prefer the power domain with the most headroom (spreads load)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    weights: ScoreWeights = ScoreWeights()
    topology_keys: tuple[str, ...] = (RACK_LABEL, HALL_LABEL)  # closest first
    # Like kube-scheduler's percentageOfNodesToScore: Filter stops once this many feasible nodes
    # are found, so a cycle costs pods x (a bounded window), not pods x nodes. The percentage
    # raises the window on big clusters; 0 means the fixed minimum only.
    min_feasible_nodes: int = 8
    percentage_of_nodes_to_score: int = 0
    # Once one node fits, stop walking after this many more have been examined, even if fewer
    # than the window were found: when fitting nodes are sparse, collecting a full window would
    # walk the whole class for every pod. A pod that fits nowhere still sees every node.
    max_nodes_to_examine: int = 256
    preemption: bool = True
    # Fail closed (DESIGN.md §2): an accelerator pod goes only to a node whose power is known
    # (exactly one pool listing the resource) and guarded (at least one PowerBudget). An admin
    # who really wants to run accelerators outside every budget turns this on, knowingly.
    allow_unguarded_nodes: bool = False
    shedding: bool = True
    # Backoff: skip pods that fit nowhere until room may have been freed, retrying them anyway
    # every this many cycles (kube-scheduler flushes its unschedulableQ the same way).
    park_unschedulable: bool = True
    unschedulable_flush_cycles: int = 30

    def feasible_nodes_to_find(self, total_nodes: int) -> int:
        by_percentage = total_nodes * self.percentage_of_nodes_to_score // 100
        return max(1, self.min_feasible_nodes, by_percentage)
