"""Nodes and pods (the JSON the API returns) -> the domain's Node and Pod.

Pure functions: no I/O, no clock (the caller passes `now`), no kopf. Each takes one object and
returns its translation, or raises `TranslationError` with a message a person can act on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from wattsched.domain import (
    GANG_LABEL,
    GANG_SIZE_ANNOTATION,
    Node,
    NodeAffinity,
    Pod,
    PodKey,
    SelectorRequirement,
    Taint,
    Toleration,
)
from wattsched.translate.common import (
    JSON,
    MAX_GANG_SIZE,
    TERMINAL_PHASES,
    TranslationError,
    meta_of,
)
from wattsched.translate.quantity import QuantityError, resource_amount

# -- selectors ------------------------------------------------------------------------------------


def _requirements(raw: Iterable[JSON] | None) -> tuple[SelectorRequirement, ...]:
    return tuple(
        SelectorRequirement(
            key=str(item["key"]),
            operator=str(item["operator"]),
            values=tuple(str(value) for value in item.get("values") or ()),
        )
        for item in raw or ()
    )


def required_node_affinity(spec: JSON) -> NodeAffinity | None:
    """requiredDuringSchedulingIgnoredDuringExecution, or None when the pod has none."""
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return None
    terms = []
    for term in required.get("nodeSelectorTerms") or ():
        if term.get("matchFields"):
            raise TranslationError(
                "required node affinity uses matchFields, which wattsched does not support; "
                "select nodes by label with matchExpressions instead",
                "UnsupportedAffinity",
            )
        terms.append(_requirements(term.get("matchExpressions")))
    return NodeAffinity(terms=tuple(terms))


# -- nodes ----------------------------------------------------------------------------------------


def _amounts(raw: JSON | None) -> dict[str, int]:
    amounts: dict[str, int] = {}
    for resource, quantity in (raw or {}).items():
        try:
            amounts[resource] = resource_amount(resource, quantity)
        except QuantityError as err:
            raise TranslationError(f"resource {resource}: {err}") from err
    return amounts


def node_from_object(obj: JSON) -> Node:
    meta, spec, status = meta_of(obj), obj.get("spec") or {}, obj.get("status") or {}
    ready = any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or ()
    )
    return Node(
        name=str(meta["name"]),
        labels=MappingProxyType(dict(meta.get("labels") or {})),
        allocatable=MappingProxyType(_amounts(status.get("allocatable"))),
        taints=tuple(
            Taint(
                key=str(taint.get("key", "")),
                value=str(taint.get("value") or ""),
                effect=str(taint.get("effect", "NoSchedule")),
            )
            for taint in spec.get("taints") or ()
        ),
        unschedulable=bool(spec.get("unschedulable", False)),
        ready=ready,
    )


# -- pools and budgets ---------------------------------------------------------------------------


# -- pods -----------------------------------------------------------------------------------------


def _add(total: dict[str, int], amounts: Mapping[str, int]) -> None:
    for resource, amount in amounts.items():
        total[resource] = total.get(resource, 0) + amount


def _max_into(total: dict[str, int], amounts: Mapping[str, int]) -> None:
    for resource, amount in amounts.items():
        if amount > total.get(resource, 0):
            total[resource] = amount


def _container_requests(container: JSON) -> dict[str, int]:
    """requests, with limits standing in for requests that are not given (as the API defaults)."""
    resources = container.get("resources") or {}
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    return _amounts(merged)


def pod_requests(spec: JSON) -> dict[str, int]:
    """Requests summed the way kube-scheduler sums them.

    max(sum of app containers + sidecars, the largest init container plus the sidecars started
    before it), per resource, plus the pod overhead. Sidecars are init containers with
    restartPolicy Always: they keep running, so they add up with everything after them.
    """
    total: dict[str, int] = {}
    for container in spec.get("containers") or ():
        _add(total, _container_requests(container))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, requests)
            _max_into(init_peak, sidecars)
        else:
            during = dict(sidecars)
            _add(during, requests)
            _max_into(init_peak, during)
    _add(total, sidecars)
    _max_into(total, init_peak)
    _add(total, _amounts(spec.get("overhead")))
    return {resource: amount for resource, amount in total.items() if amount}


def _gang(meta: JSON, namespace: str) -> tuple[str | None, int]:
    """(gang key namespaced as ns/name, size), or raise with what the annotation should be."""
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    name = labels.get(GANG_LABEL)
    if not name:
        return None, 1
    raw = annotations.get(GANG_SIZE_ANNOTATION)
    if raw is None:
        raise TranslationError(
            f"pod is in gang {name!r} (label {GANG_LABEL}) but has no annotation "
            f'{GANG_SIZE_ANNOTATION}; set it to the number of pods in the gang, e.g. "16"',
            "InvalidGangSize",
        )
    try:
        size = int(str(raw).strip())
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_GANG_SIZE:
        raise TranslationError(
            f"annotation {GANG_SIZE_ANNOTATION} is {raw!r}; it must be a whole number of pods "
            f'from 1 to {MAX_GANG_SIZE}, e.g. "16"',
            "InvalidGangSize",
        )
    return f"{namespace}/{name}", size


def scheduled_condition_message(status: JSON) -> str | None:
    """The message of a PodScheduled=False condition already on the pod (to report only news)."""
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or "")
    return None


@dataclass(frozen=True, slots=True)
class TranslatedPod:
    """A pod the cache keeps: the engine's Pod, or why it cannot be scheduled as written."""

    pod: Pod
    invalid: str | None = None  # set: pending, but never handed to the engine
    invalid_reason: str = ""
    reported: str | None = None  # the PodScheduled=False message the pod shows now

    @property
    def key(self) -> PodKey:
        return self.pod.key


def pod_is_relevant(obj: JSON, scheduler_name: str) -> bool:
    """Ours to schedule, or bound to a node (every bound pod counts in the ledger), and live."""
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, meta_of(obj)
    if status.get("phase") in TERMINAL_PHASES:
        return False
    if spec.get("nodeName"):
        return True
    if meta.get("deletionTimestamp"):
        return False  # a pending pod on its way out is nobody's to place
    return spec.get("schedulerName") == scheduler_name


def pod_from_object(obj: JSON, scheduler_name: str, created_order: int) -> TranslatedPod:
    """The pod as the engine sees it; the caller has checked `pod_is_relevant`."""
    meta, spec = meta_of(obj), obj.get("spec") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta["name"])
    node_name = spec.get("nodeName") or None
    managed = spec.get("schedulerName") == scheduler_name
    invalid: str | None = None
    invalid_reason = ""
    try:
        requests = pod_requests(spec)
    except TranslationError as err:
        requests, invalid, invalid_reason = {}, str(err), "InvalidRequests"
    gang: str | None = None
    gang_size = 1
    affinity: NodeAffinity | None = None
    if node_name is None:
        try:
            gang, gang_size = _gang(meta, namespace)
            affinity = required_node_affinity(spec)
        except TranslationError as err:
            if invalid is None:
                invalid, invalid_reason = str(err), err.reason
    else:
        # A bound member still belongs to its gang: Permit counts it toward the gang's size, so
        # a recreated member joins the running ones, and Shed and preemption take the gang
        # whole. A bound pod's malformed gang annotation cannot be acted on: it is just alone.
        with contextlib.suppress(TranslationError):
            gang, gang_size = _gang(meta, namespace)
    pod = Pod(
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid", "")),
        priority=int(spec.get("priority") or 0),
        created_order=created_order,
        requests=MappingProxyType(requests),
        node_selector=MappingProxyType(dict(spec.get("nodeSelector") or {})),
        affinity=affinity,
        tolerations=tuple(
            Toleration(
                key=str(item.get("key") or ""),
                operator=str(item.get("operator") or "Equal"),
                value=str(item.get("value") or ""),
                effect=str(item.get("effect") or ""),
            )
            for item in spec.get("tolerations") or ()
        ),
        gang=gang,
        gang_size=gang_size,
        node_name=node_name,
        managed=managed,
    )
    reported = scheduled_condition_message(obj.get("status") or {}) if node_name is None else None
    if node_name is not None:
        return TranslatedPod(pod)
    return TranslatedPod(pod, invalid, invalid_reason, reported)
