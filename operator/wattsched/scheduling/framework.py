"""The framework's words, as every Kubernetes scheduling engineer knows them, and the Cycle.

kube-scheduler's extension points, as small protocols over plain dataclasses:
- FilterPlugin      may the pod go to these nodes? Answered once per NodeClass (same pool, same
                    budgets), because power is the same question for every node of a class.
- ScorePlugin       which of the nodes that fit (`scoring`).
- ReservePlugin     count the placement before the bind is sent; unreserve if Permit denies.
- PermitPlugin      approve or deny what Reserve did (gangs: whole or not at all).
- PostFilterPlugin  what to do for a pod that fits nowhere (preemption).
A new constraint is one FilterPlugin plus one ReservePlugin, registered in `Scheduler`: every
step calls all that are registered. Node-level resources are not a plugin list: their walk is
the hottest loop of a cycle (`fit.NodeFit`), and a call per node per plugin tripled it.

`Cycle` is what the steps share for one cycle, and nothing else: each step owns its own scratch
(failure and cursor caches in `fit`, held room in `nominated`, victim searches in `preemption`)
and hears through `room_freed` when within the cycle room comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from wattsched.domain import Plan, Pod, PodKey
from wattsched.scheduling.state import ClusterState

if TYPE_CHECKING:  # types only: the steps import this module
    from wattsched.scheduling.nodeclasses import NodeClass
    from wattsched.scheduling.queue import QueueUnit


@dataclass(slots=True)
class HeldRoom:
    """Room PreFilter holds for nominated preemptors: requests per node, IT watts per budget."""

    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    it_watts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Cycle:
    """One cycle's shared facts. Deliberately dropped at the end: carrying anything across
    cycles would make a plan depend on history, not only on the state."""

    state: ClusterState
    plan: Plan
    total_nodes: int
    to_find: int  # feasible nodes to collect before scoring (percentageOfNodesToScore)
    going: set[PodKey]  # evicting, or evicted in this cycle: counted until gone, never re-picked
    held: HeldRoom = field(default_factory=HeldRoom)
    _on_room_freed: list[Callable[[], None]] = field(default_factory=list)
    _on_placed: list[Callable[[Pod], None]] = field(default_factory=list)

    def when_room_freed(self, listener: Callable[[], None]) -> None:
        self._on_room_freed.append(listener)

    def when_placed(self, listener: Callable[[Pod], None]) -> None:
        self._on_placed.append(listener)

    def room_freed(self) -> None:
        """Room came back within the cycle (Permit unreserved a gang): cached failures go."""
        for listener in self._on_room_freed:
            listener()

    def placed(self, pod: Pod) -> None:
        for listener in self._on_placed:
            listener(pod)


class FilterPlugin(Protocol):
    """A Filter whose answer holds for every node of a NodeClass."""

    name: str

    def filter(self, cycle: Cycle, it_delta: int, node_class: NodeClass) -> bool:
        """True when a pod adding `it_delta` IT watts may go to the class's nodes."""
        ...

    def reason(self, cycle: Cycle, it_delta: int, node_class: NodeClass) -> str:
        """Why not, with numbers; asked only when the pod fits nowhere (formatting costs)."""
        ...


class ReservePlugin(Protocol):
    name: str

    def reserve(self, state: ClusterState, pod: Pod, node: str) -> None: ...

    def unreserve(self, state: ClusterState, pod: Pod) -> None: ...


class PermitPlugin(Protocol):
    name: str

    def permit(self, cycle: Cycle, unit: QueueUnit) -> None:
        """Place the unit's members whole through Filter, Score and Reserve, or none of them."""
        ...


class PostFilterPlugin(Protocol):
    name: str

    def post_filter(self, cycle: Cycle, pod: Pod) -> None:
        """The pod fits nowhere: make room for it if that may be done (and record how)."""
        ...
