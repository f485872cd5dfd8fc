"""Filter and Score for one pod: the node it goes to, or why it fits nowhere.

Filter runs the registered FilterPlugins once per node class (power), then walks the class's
nodes for resources; Score weighs the feasible nodes it collected. The scratch this step keeps
for one cycle never changes an answer, for one reason: within a cycle nodes only fill up, until
Permit unreserves a gang (`room_freed`), which drops it all.
- `failed`: a pod shape and size that fit nowhere fails again, so its twins fail at once.
- `cursors`: where a walk last found room in a class, so a packing cycle does not re-walk the
  nodes it has filled (the walk wraps round, so nothing is skipped).
- `exhausted`: classes a complete walk found full, with their reasons.
- `request_keys`: each requests mapping's sorted items, by identity; every pod, and so every
  mapping, stays alive in the state until the cycle returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain

from wattsched.domain import Node, Pod
from wattsched.scheduling.config import SchedulerConfig
from wattsched.scheduling.filters import (
    TOO_MANY_PODS,
    PodShape,
    Requests,
    insufficient,
    resource_reason,
    unschedulable_message,
)
from wattsched.scheduling.framework import Cycle, FilterPlugin
from wattsched.scheduling.nodeclasses import NodeClass, NodeClasses
from wattsched.scheduling.scoring import GangTopology, ScoreContext, ScorePlugin

_NO_USAGE: Mapping[str, int] = {}


class NodeFit:
    def __init__(
        self,
        config: SchedulerConfig,
        classes: NodeClasses,
        filters: Sequence[FilterPlugin],
        scores: Sequence[tuple[int, ScorePlugin]],
    ) -> None:
        self._walk_limit = config.max_nodes_to_examine
        self._classes = classes
        self._filters = tuple(filters)
        self._scores = tuple(scores)
        # Gang topology scores 0 for a pod outside a gang: skip the call per node.
        self._solo_scores = tuple((w, p) for w, p in scores if not isinstance(p, GangTopology))
        self.failed: dict[tuple[PodShape, Requests], str] = {}
        self._cursors: dict[tuple[int, PodShape, Requests], int] = {}
        self._exhausted: dict[tuple[int, PodShape, Requests], dict[str, int]] = {}
        self.request_keys: dict[int, Requests] = {}

    def begin_cycle(self, cycle: Cycle) -> None:
        self.room_freed()
        self.request_keys.clear()
        cycle.when_room_freed(self.room_freed)

    def room_freed(self) -> None:
        self.failed.clear()
        self._cursors.clear()
        self._exhausted.clear()

    def requests_of(self, pod: Pod) -> Requests:
        key = self.request_keys.get(id(pod.requests))
        if key is None:
            key = tuple(sorted(pod.requests.items()))
            self.request_keys[id(pod.requests)] = key
        return key

    def find_node(
        self,
        cycle: Cycle,
        pod: Pod,
        gang_topology: dict[str, dict[str, int]],
        cacheable: bool,
    ) -> tuple[str | None, str]:
        """(the node, "") or (None, the `0/N nodes fit` message)."""
        state = cycle.state
        shape = PodShape.of(pod)
        requests = self.requests_of(pod)
        fail_key = (shape, requests)
        if cacheable and fail_key in self.failed:
            return None, self.failed[fail_key]
        candidates, too_small = self._classes.candidates(state, shape, requests)
        reserved_nodes = cycle.held.nodes
        usage_by_node = state.usage_by_node
        pods_by_node = state.pods_by_node
        walk_limit = self._walk_limit
        reasons: dict[str, int] = {}
        feasible: list[tuple[Node, NodeClass, int]] = []  # with the pod's devices there
        to_find = cycle.to_find
        filters = self._filters
        # Classes a Filter refused, with the pod's watts there and the plugin: their reasons
        # (which name numbers, so cost formatting) are only written if the pod fits nowhere.
        refused: list[tuple[NodeClass, int, FilterPlugin]] = []

        # 3. Filter: plugins once per class, resources per node, walking from the class cursor.
        for index, node_class, delta, devices in candidates:
            refusing = None
            for plugin in filters:  # a plain loop: this runs per class for every pod
                if not plugin.filter(cycle, delta, node_class):
                    refusing = plugin
                    break
            if refusing is not None:
                refused.append((node_class, delta, refusing))
                continue
            nodes = node_class.nodes
            cursor_key = (index, shape, requests)
            known = self._exhausted.get(cursor_key)
            if known is not None:
                for known_reason, n in known.items():
                    reasons[known_reason] = reasons.get(known_reason, 0) + n
                continue
            start = self._cursors.get(cursor_key, 0)
            first_fit: int | None = None
            count = len(nodes)
            walked: dict[str, int] = {}
            examined = 0
            for position in chain(range(start, count), range(start)):
                node = nodes[position]
                name = node.name
                examined += 1
                held = reserved_nodes.get(name) if reserved_nodes else None
                if held:
                    reason = resource_reason(
                        requests,
                        node.allocatable,
                        usage_by_node.get(name, _NO_USAGE),
                        len(pods_by_node.get(name, ())),
                        held,
                    )
                else:
                    # `resource_reason` without held room, inlined: this is the hottest loop
                    # of a cycle (every node walked), and the call alone was a third of it.
                    # Same checks in the same order, so the same first reason.
                    reason = None
                    allocatable = node.allocatable
                    used = usage_by_node.get(name, _NO_USAGE)
                    for resource, quantity in requests:
                        if used.get(resource, 0) + quantity > allocatable.get(resource, 0):
                            reason = insufficient(resource)
                            break
                    else:
                        limit = allocatable.get("pods")
                        if limit is not None and len(pods_by_node.get(name, ())) >= limit:
                            reason = TOO_MANY_PODS
                if reason is not None:
                    walked[reason] = walked.get(reason, 0) + 1
                    if feasible and examined >= walk_limit:
                        break
                    continue
                if first_fit is None:
                    first_fit = position
                feasible.append((node, node_class, devices))
                if len(feasible) >= to_find or examined >= walk_limit:
                    break
            for walked_reason, n in walked.items():
                reasons[walked_reason] = reasons.get(walked_reason, 0) + n
            if first_fit is None:
                if examined == count:  # only a complete walk proves the class is full
                    self._exhausted[cursor_key] = walked
            else:
                self._cursors[cursor_key] = first_fit
            if len(feasible) >= to_find or (feasible and examined >= walk_limit):
                break

        if not feasible:
            for node_class, delta, plugin in refused:
                reason = plugin.reason(cycle, delta, node_class)
                reasons[reason] = reasons.get(reason, 0) + len(node_class.nodes)
            for static_reason_, n in too_small.items():
                reasons[static_reason_] = reasons.get(static_reason_, 0) + n
            message = unschedulable_message(cycle.total_nodes, reasons)
            if cacheable:
                self.failed[fail_key] = message
            return None, message
        return self._score(cycle, pod, feasible, gang_topology), ""

    def _score(
        self,
        cycle: Cycle,
        pod: Pod,
        feasible: list[tuple[Node, NodeClass, int]],
        gang_topology: dict[str, dict[str, int]],
    ) -> str:
        """4. Score: weighted plugins; the highest wins, the node name breaks ties."""
        plugins = self._scores if gang_topology else self._solo_scores
        if len(feasible) == 1 or not plugins:
            return feasible[0][0].name
        usage_by_node = cycle.state.usage_by_node
        usage = cycle.state.ledger.budgets
        ctx = ScoreContext(pod.requests, 0, gang_topology)
        best_name = ""
        best_score = -1
        for node, node_class, devices in feasible:
            ctx.devices_requested = devices
            used = usage_by_node.get(node.name, _NO_USAGE)
            total = 0
            for weight, plugin in plugins:
                total += weight * plugin.score(
                    ctx, node, node_class.pool, used, node_class.budgets, usage
                )
            if total > best_score or (total == best_score and node.name < best_name):
                best_score, best_name = total, node.name
        return best_name
