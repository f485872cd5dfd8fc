"""The guarantees of DESIGN.md §2 and §4, on a real API server with the real operator.

- Fail closed (§2, invariant 6): an accelerator pod binds only to a node that is in a pool and
  under a budget; until then it waits, and its condition says which of the two is missing.
- Gangs (§1, invariant 3): Shed takes a running gang whole or leaves it; a recreated member
  rejoins its running gang; members that disagree on the gang's size are told so.

One operator for the module; every test has a zone, a pool shape, budgets and a namespace of its
own, so the tests share nothing but the operator and run in any order.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from test_operator_harness import (
    GROUP_PATH,
    ULSAN_SHAPES,
    ZONE_LABEL,
    Namespace,
    OperatorProcess,
    PoolShape,
    TestSite,
    assert_no_budget_exceeded,
    assert_no_device_double_booked,
    create_pods,
    delete_pods,
    dump,
    install_crds,
    list_pods,
    pending_reason,
    recompute,
    wait_until,
)

from e2e.providers.rest import MERGE, KubeREST

JSON = dict[str, Any]
H200 = ULSAN_SHAPES[0]
GANG_LABEL = "wattsched.io/gang"
GANG_SIZE = "wattsched.io/gang-size"
WAIT_SECONDS = 60.0  # generous: two shared cores, an API server and an operator on them
HOLD_SECONDS = 4.0  # how long "still unbound" is watched before the next step
POLL_SECONDS = 0.25
# What one H200 device gives back when its pod goes: it falls from deviceWatts to idle.
FREED_PER_DEVICE = H200.device_watts - H200.idle_device_watts


@pytest.fixture(scope="module")
def operator_site(
    control_plane: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    install_crds(control_plane)
    rest = KubeREST(control_plane.kubeconfig, max_connections=16)
    site = TestSite(rest)
    namespace = Namespace(rest, site.name("guarantees"))
    operator = OperatorProcess(
        Path(control_plane.kubeconfig),
        tmp_path_factory.mktemp("guarantees"),
        scheduler_name=site.scheduler_name,
        lease_namespace=namespace.name,
        lease_duration_seconds=15,
    ).start()
    try:
        operator.wait_ready()
        yield {"rest": rest, "site": site, "operator": operator}
    finally:
        code = operator.stop()
        namespace.delete()
        site.delete()
        assert code == 0, f"the operator exited with {code}:\n{operator.log_tail()}"


@dataclass
class Scene:
    """One test's corner of the site: its zone, its H200-shaped pool and its namespace."""

    rest: KubeREST
    site: TestSite
    operator: OperatorProcess
    zone: str
    shape: PoolShape
    ns: str

    def add_nodes(self, count: int) -> list[str]:
        """Nodes labelled for this scene's pool (which need not exist yet) and zone."""
        return self.site.add_nodes(self.shape, count, zone=self.zone)

    def add_pool(self) -> str:
        return self.site.add_pool(self.shape)

    def add_budget(self, limit: str, *, enforcement: str = "Admit") -> str:
        return self.site.add_budget(
            f"{self.zone}-budget", {ZONE_LABEL: self.zone}, limit, enforcement=enforcement
        )

    def pod(
        self,
        name: str,
        devices: int,
        *,
        priority_class: str | None = None,
        gang: str | None = None,
        gang_size: str | None = None,
    ) -> JSON:
        labels = {GANG_LABEL: gang} if gang else {}
        annotations = {GANG_SIZE: gang_size} if gang_size is not None else {}
        return self.site.pod(
            name,
            self.ns,
            self.shape.resource,
            devices,
            priority_class=priority_class,
            zone=self.zone,
            labels=labels,
            annotations=annotations,
        )

    def pods(self, names: list[str] | None = None) -> dict[str, JSON]:
        """The live pods of the scene by name (only `names` when given)."""
        found = {p["metadata"]["name"]: p for p in list_pods(self.rest, self.ns)}
        if names is None:
            return found
        return {name: found[name] for name in names if name in found}

    def explain(self, names: list[str]) -> str:
        """Where each pod is, or why it waits: the text a failure should show."""
        pods = self.pods()
        lines = []
        for name in names:
            pod = pods.get(name)
            if pod is None:
                lines.append(f"  {name}: gone")
            elif pod["spec"].get("nodeName"):
                lines.append(f"  {name}: bound to {pod['spec']['nodeName']}")
            else:
                condition = scheduled_condition(pod) or {}
                lines.append(
                    f"  {name}: unbound, PodScheduled={condition.get('status')} "
                    f"reason={condition.get('reason')} message={condition.get('message')!r}"
                )
        return "\n".join(lines)


@pytest.fixture
def scene(operator_site: dict[str, Any]) -> Iterator[Scene]:
    rest, site = operator_site["rest"], operator_site["site"]
    zone = f"z{uuid.uuid4().hex[:5]}"
    namespace = Namespace(rest, site.name(zone))
    try:
        yield Scene(
            rest, site, operator_site["operator"], zone, replace(H200, short=zone), namespace.name
        )
    finally:
        namespace.delete()


# -- small helpers --------------------------------------------------------------------------------


def scheduled_condition(pod: JSON) -> JSON | None:
    for condition in pod.get("status", {}).get("conditions") or ():
        if condition.get("type") == "PodScheduled":
            return dict(condition)
    return None


def bound(pod: JSON | None) -> bool:
    return bool(pod and pod["spec"].get("nodeName"))


def gone_or_going(pod: JSON | None) -> bool:
    """Deleted, being deleted (an eviction), or finished: no longer holding its devices."""
    if pod is None:
        return True
    if pod["metadata"].get("deletionTimestamp"):
        return True
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def wait_for(
    scene: Scene,
    check: Callable[[], Any],
    what: str,
    names: list[str],
    seconds: float = WAIT_SECONDS,
) -> Any:
    """`wait_until`, and on a timeout the pods' whereabouts and the operator's last words."""
    try:
        return wait_until(check, seconds, what, interval_seconds=POLL_SECONDS)
    except AssertionError as err:
        raise AssertionError(
            f"{err}\npods:\n{scene.explain(names)}\noperator log:\n{scene.operator.log_tail(15)}"
        ) from None


def hold_unbound(scene: Scene, names: list[str], wording: str) -> None:
    """For HOLD_SECONDS, every pod stays unbound and its PodScheduled=False names `wording`."""
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:
        pods = scene.pods(names)
        assert len(pods) == len(names), f"pods went missing:\n{scene.explain(names)}"
        for name, pod in pods.items():
            assert not bound(pod), f"{name} was bound while it must wait:\n{scene.explain(names)}"
            assert wording in (pending_reason(pod) or ""), (
                f"{name} no longer says {wording!r}:\n{scene.explain(names)}"
            )
        time.sleep(POLL_SECONDS)


def all_pending_with(scene: Scene, names: list[str], wording: str) -> bool:
    """Every pod unbound with `wording` in its PodScheduled=False message; fails if one binds."""
    pods = scene.pods(names)
    binds = [name for name, pod in pods.items() if bound(pod)]
    assert not binds, f"{binds} bound while they must wait:\n{scene.explain(names)}"
    return len(pods) == len(names) and all(
        wording in (pending_reason(pod) or "") for pod in pods.values()
    )


def budget_status(rest: KubeREST, name: str) -> JSON:
    return dict(rest.get(f"{GROUP_PATH}/powerbudgets/{name}").get("status") or {})


def within_limit(status: JSON) -> bool:
    conditions = {c["type"]: c for c in status.get("conditions") or ()}
    within = conditions.get("WithinLimit") or {}
    committed, allocatable = status.get("committedWatts"), status.get("allocatableWatts")
    return (
        within.get("status") == "True"
        and committed is not None
        and allocatable is not None
        and committed <= allocatable
    )


# -- fail closed ----------------------------------------------------------------------------------


def test_pods_never_bind_to_nodes_whose_pool_or_budget_is_not_there_yet(scene: Scene) -> None:
    rest = scene.rest
    nodes = scene.add_nodes(3)
    pods = [scene.pod(f"wait-{letter}", 4) for letter in "abc"]
    names = [p["metadata"]["name"] for p in pods]
    create_pods(rest, pods)

    # 1. Nodes with devices, labelled for a pool that is not there: their power is not known.
    no_pool = f"in no AcceleratorPool listing {scene.shape.resource}"
    wait_for(scene, lambda: all_pending_with(scene, names, no_pool),
             f"every pod pending with {no_pool!r}", names)  # fmt: skip
    hold_unbound(scene, names, no_pool)

    # 2. The pool, but no budget over the nodes: their power is known but not guarded.
    scene.add_pool()
    no_budget = "in no PowerBudget"
    wait_for(scene, lambda: all_pending_with(scene, names, no_budget),
             f"every pod pending with {no_budget!r} once the pool exists", names)  # fmt: skip
    hold_unbound(scene, names, no_budget)

    # 3. The budget: now the pods bind, within it.
    budget = scene.add_budget("100kW")
    wait_for(scene, lambda: all(bound(p) for p in scene.pods(names).values())
             and len(scene.pods(names)) == len(names),
             "every pod bound once the budget exists", names)  # fmt: skip
    assert {p["spec"]["nodeName"] for p in scene.pods(names).values()} <= set(nodes)
    status = wait_for(
        scene,
        lambda: (s := budget_status(rest, budget)).get("pods") == len(names) and s,
        f"the status of {budget} to count the {len(names)} pods",
        names,
    )
    assert within_limit(status), dump(status)
    ledger = recompute(rest)
    assert ledger.budget[budget]["committed"] == status["committedWatts"], dump(status)
    assert_no_budget_exceeded(ledger, [budget])
    assert_no_device_double_booked(ledger)


# -- gangs ----------------------------------------------------------------------------------------


def test_shedding_evicts_a_running_gang_whole_or_not_at_all(scene: Scene) -> None:
    rest, site = scene.rest, scene.site
    low = site.add_priority_class(f"{scene.zone}-low", 100)
    high = site.add_priority_class(f"{scene.zone}-high", 1000)
    scene.add_nodes(3)
    scene.add_pool()
    budget = scene.add_budget("100kW", enforcement="Shed")
    # The gang first, so that it has two whole nodes; then the singles on the third.
    gang = [scene.pod(f"gang-{letter}", 8, priority_class=low, gang="train", gang_size="2")
            for letter in "ab"]  # fmt: skip
    gang_names = [p["metadata"]["name"] for p in gang]
    create_pods(rest, gang)
    wait_for(scene, lambda: len(scene.pods(gang_names)) == 2
             and all(bound(p) for p in scene.pods(gang_names).values()),
             "the gang bound whole", gang_names)  # fmt: skip
    singles = [scene.pod(f"single-{letter}", 1, priority_class=high) for letter in "abcd"]
    single_names = [p["metadata"]["name"] for p in singles]
    create_pods(rest, singles)
    names = gang_names + single_names
    wait_for(scene, lambda: len(scene.pods(names)) == len(names)
             and all(bound(p) for p in scene.pods(names).values()),
             "every pod bound", names)  # fmt: skip

    # 3 x 4500 base + 20 devices at 700 + 4 idle at 90 = 27.86 kW. Over by 4.8 kW: one gang
    # member (8 x 610 W = 4.88 kW) would do, every single together (4 x 610 W) would not; only
    # the whole gang (9.76 kW) both restores the budget and keeps invariant 3.
    committed = recompute(rest).budget[budget]["committed"]
    assert (
        committed == 3 * H200.node_base_watts + 20 * H200.device_watts + 4 * H200.idle_device_watts
    )
    limit_watts = committed - 4800
    assert 8 * FREED_PER_DEVICE >= 4800 > 4 * FREED_PER_DEVICE
    rest.patch(f"{GROUP_PATH}/powerbudgets/{budget}", {"spec": {"limit": f"{limit_watts}W"}},
               content_type=MERGE)  # fmt: skip

    def restored() -> JSON | None:
        status = budget_status(rest, budget)
        if status.get("observedGeneration") != 2 or not within_limit(status):
            return None
        if recompute(rest).budget[budget]["committed"] > limit_watts:
            return None
        return status

    status = wait_for(scene, restored, f"{budget} within {limit_watts} W again", names)
    assert status["allocatableWatts"] == limit_watts, dump(status)

    # Two evictions are two API calls: give the second a moment, never a lasting half gang.
    def whole_or_none() -> tuple[str, ...] | None:
        pods = scene.pods(gang_names)
        going = tuple(sorted(n for n in gang_names if gone_or_going(pods.get(n))))
        return going if len(going) in (0, len(gang_names)) else None

    going = wait_for(scene, whole_or_none, "the gang evicted whole or left whole", names, 15)
    kept = sorted(n for n, p in scene.pods(single_names).items() if not gone_or_going(p))
    print(f"\nshed: the gang {'was evicted whole' if going else 'stayed'}; singles kept: {kept}")
    ledger = recompute(rest)
    assert_no_budget_exceeded(ledger, [budget])
    assert ledger.budget[budget]["committed"] <= limit_watts


def test_a_recreated_gang_member_rejoins_its_running_gang(scene: Scene) -> None:
    rest = scene.rest
    scene.add_nodes(3)
    scene.add_pool()
    scene.add_budget("100kW")
    gang = [scene.pod(f"worker-{letter}", 8, gang="ring", gang_size="3") for letter in "abc"]
    names = [p["metadata"]["name"] for p in gang]
    create_pods(rest, gang)
    wait_for(scene, lambda: len(scene.pods(names)) == 3
             and all(bound(p) for p in scene.pods(names).values()),
             "the gang of 3 bound whole", names)  # fmt: skip

    # A member dies (its node drained, its pod deleted) and its controller makes it again.
    lost = names[1]
    lost_uid = scene.pods([lost])[lost]["metadata"]["uid"]
    delete_pods(rest, scene.ns, [lost])
    wait_for(scene, lambda: lost not in scene.pods(), f"{lost} gone", names)
    create_pods(rest, [scene.pod(lost, 8, gang="ring", gang_size="3")])
    wait_for(scene, lambda: bound(scene.pods([lost]).get(lost)),
             f"the recreated {lost} to rejoin its running gang", names)  # fmt: skip
    pods = scene.pods(names)
    assert pods[lost]["metadata"]["uid"] != lost_uid, "the old pod, not the recreated one"
    assert all(bound(p) for p in pods.values()), scene.explain(names)
    assert len({p["spec"]["nodeName"] for p in pods.values()}) == 3, scene.explain(names)
    assert_no_device_double_booked(recompute(rest))


def test_gang_members_that_disagree_on_the_size_are_told_so(scene: Scene) -> None:
    rest = scene.rest
    scene.add_nodes(2)
    scene.add_pool()
    scene.add_budget("100kW")
    pods = [scene.pod("member-a", 1, gang="pair", gang_size="2"),
            scene.pod("member-b", 1, gang="pair", gang_size="3")]  # fmt: skip
    names = [p["metadata"]["name"] for p in pods]
    create_pods(rest, pods)

    def told() -> bool:
        found = scene.pods(names)
        binds = [name for name, pod in found.items() if bound(pod)]
        assert not binds, (
            f"{binds} bound though the gang's size is unknown:\n{scene.explain(names)}"
        )
        return len(found) == 2 and all(
            (scheduled_condition(p) or {}).get("reason") == "InvalidGang" for p in found.values()
        )

    wait_for(scene, told, "both members PodScheduled=False with reason InvalidGang", names)
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:  # and they stay so
        assert told(), scene.explain(names)
        time.sleep(POLL_SECONDS)
    for name, pod in scene.pods(names).items():
        condition = scheduled_condition(pod) or {}
        message = str(condition.get("message") or "")
        assert condition.get("status") == "False", scene.explain(names)
        assert "gang-size" in message, f"{name}: {message!r}"
        assert re.search(r"\b2\b", message) and re.search(r"\b3\b", message), (
            f"{name}: the message does not name both sizes, 2 and 3: {message!r}"
        )
