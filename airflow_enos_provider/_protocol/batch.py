"""Batch Processing procedures built from calls: each is one flow that the sync and async hooks share."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timezone
from typing import Any

from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider._protocol.flow import Caller, Flow, Sleep
from airflow_enos_provider._protocol.operations import Operation
from airflow_enos_provider._protocol.reattach import (
    MINUTE_MS,
    ambiguity,
    candidate_times,
    describe,
    own_instances,
    parse_zone,
)
from airflow_enos_provider._protocol.search import Paging, Search, flow_type_of, search
from airflow_enos_provider._validation import INSTANCE_ID
from airflow_enos_provider.exceptions import (
    EnOSAPIError,
    EnOSAuthenticationError,
    EnOSError,
    EnOSValidationError,
)
from airflow_enos_provider.status import EnOSFlowInstanceStatus

# Refusals after which reading the instance cannot change the verdict of a cancel.
NOT_WORTH_A_READ = frozenset({EnOSCode.BP_USER_MISMATCH, EnOSCode.BP_LOCKED})


def read_object(caller: Caller, op: Operation) -> Flow[dict[str, Any]]:
    """Run a call whose ``data`` is an object, and return it.

    :param caller: the hook call's context.
    :param op: the call.
    """
    return expect_dict((yield from caller.call(op)), op)


def ensure_stopped(caller: Caller, flow_inst_id: str) -> Flow[dict[str, Any]]:
    """Cancel a flow instance, or confirm that it already finished (see the hook's method).

    :param caller: the hook call's context.
    :param flow_inst_id: the instance id, already checked.
    """
    try:
        yield from caller.call(ops.cancel_flow_instance(flow_inst_id))
    except EnOSAPIError as refusal:
        if isinstance(refusal, EnOSAuthenticationError) or refusal.code in NOT_WORTH_A_READ:
            raise
        instance: dict[str, Any] | EnOSError
        try:
            instance = yield from read_object(caller, ops.get_flow_instance(flow_inst_id))
        except EnOSError as read_error:
            instance = read_error
        return _outcome_after_refusal(caller, flow_inst_id, refusal, instance)
    return stopped(flow_inst_id, "cancelled", None)


def _outcome_after_refusal(
    caller: Caller, flow_inst_id: str, refusal: EnOSAPIError, instance: dict[str, Any] | EnOSError
) -> dict[str, Any]:
    if isinstance(instance, EnOSError):
        caller.log.warning(
            "EnOS refused to cancel flow instance %s (code %s) and reading it failed too: %s",
            flow_inst_id, refusal.code, instance,
        )  # fmt: skip
        raise refusal
    try:
        status = EnOSFlowInstanceStatus.parse(instance.get("status"), "status")
    except EnOSValidationError:
        raise refusal from None
    if not status.is_final:
        raise refusal
    return stopped(flow_inst_id, "already_final", status)


def stopped(flow_inst_id: str, outcome: str, status: EnOSFlowInstanceStatus | None) -> dict[str, Any]:
    """Return the outcome of stopping one instance, as the hook's ensure method documents it."""
    return {"flow_inst_id": flow_inst_id, "outcome": outcome, "status": status.name if status else None}


def search_all(
    caller: Caller,
    query: Search,
    page_size: int,
    on_page: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Flow[list[dict[str, Any]]]:
    """Return every flow instance a search matches, following all pages of each scheduling type.

    :param caller: the hook call's context.
    :param query: the search (:func:`~.search.search`).
    :param page_size: instances per page request.
    :param on_page: called with each page's new matching instances as soon as the page arrives.
    """
    query = yield from with_flow_type(caller, query)
    found: dict[str, dict[str, Any]] = {}
    for flow_type in query.types or ():
        paging = Paging(page_size)
        while paging.ended is None:
            op = ops.search_flow_instances(query.body(flow_type), paging.page_no, page_size, query.sorters)
            data = yield from read_object(caller, op)
            page = paging.take(instances_of(data, op), data.get("count"))
            new = [i for i in page if str(i["instanceId"]) not in found and _of_flow(i, query.flow_id)]
            found.update((str(i["instanceId"]), i) for i in new)
            if on_page is not None and new:
                on_page(new)
        if paging.ended == "cap":
            caller.log.warning(
                "EnOS search of type %s stopped after %s pages of %s (its cap): the gateway kept sending "
                "new instances beyond what count said; the result may be incomplete",
                flow_type, paging.page_no - 1, page_size,
            )  # fmt: skip
    return list(found.values())


def instances_of(data: Mapping[str, Any], op: Operation) -> list[dict[str, Any]]:
    """Return a search reply's instances, each an object with an instance id of the documented shape.

    :param data: the reply's ``data``.
    :param op: the search call, for errors.
    """
    page = data.get("flowInsts")
    if page is None:
        return []
    if not isinstance(page, list):
        raise EnOSAPIError(f"flowInsts is not a list: {page!r:.200}", operation=op.name)
    for index, instance in enumerate(page):
        instance_id = instance.get("instanceId") if isinstance(instance, Mapping) else None
        if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
            raise EnOSAPIError(
                f"flowInsts[{index}] has no instance id of the documented shape: {instance!r:.200}",
                operation=op.name,
            )
    return page


def with_flow_type(caller: Caller, query: Search) -> Flow[Search]:
    """Return the search with its scheduling types: a workflow's own type is read with Get Flow.

    :param caller: the hook call's context.
    :param query: the search.
    """
    if query.types is not None:
        return query
    assert query.flow_id is not None  # a search without types is one workflow's
    flow = yield from read_object(caller, ops.get_flow(query.flow_id))
    return replace(query, types=flow_type_of(flow))


def _of_flow(instance: Mapping[str, Any], flow_id: int | None) -> bool:
    # EnOS matches ids only fuzzily ("2438-" also finds 12438-...): keep the flow's own.
    return flow_id is None or str(instance.get("flowId")) == str(flow_id)


#: Waits (s) before a trigger refused for the same workflow "repeatedly in 1 minute" is sent again
#: (trigger_flow_from_task, the support site's error table): 62 s in all, past any one-minute rule.
WALL_CLOCK_WAITS = (2.0, 4.0, 8.0, 16.0, 32.0)


@dataclass(frozen=True)
class Started:
    """A trigger's outcome: the new instance and the trigger time it got.

    :param flow_inst_id: the instance id EnOS returned.
    :param trigger_ms: the trigger time sent with the accepted trigger.
    :param requested_ms: the trigger time asked for (differs only when EnOS refused that minute).
    """

    flow_inst_id: str
    trigger_ms: int
    requested_ms: int


def trigger(
    caller: Caller,
    make_op: Callable[[int], Operation],
    trigger_ms: int,
    not_before_ms: int | None,
    waits: Sequence[float] | None = None,
) -> Flow[Started]:
    """Start a workflow at ``trigger_ms`` and return the new instance, never starting it twice for one call.

    EnOS may refuse a trigger with 62102 (the Trigger Flow From Task page: "do not trigger the same
    workflow repeatedly in 1 minute"; whether about the wall clock or the trigger minute is
    undocumented). After such a refusal the flow's instances at that trigger time are read: if one
    exists, the minute is taken and the next of :func:`~.reattach.candidate_times` is tried at once
    (logged with both times and the reason); if none, the refusal is a wall-clock rule and the same
    time is sent again after each of ``waits``. A refusal that outlasts them, or an hour with no
    minute left, fails.

    :param caller: the hook call's context.
    :param make_op: the trigger operation for a trigger time.
    :param trigger_ms: the trigger time asked for.
    :param not_before_ms: the earliest an instance of this caller's can have started (the lost-reply
        check keeps none older); None for the start of this call.
    :param waits: seconds to wait between refused sends of one time; None for :data:`WALL_CLOCK_WAITS`.
    """
    waits = WALL_CLOCK_WAITS if waits is None else waits
    times = candidate_times(trigger_ms)
    since = int(time.time() * 1000) - MINUTE_MS if not_before_ms is None else not_before_ms
    index, waited = 0, 0
    while True:
        at = times[index]
        op = make_op(at)
        try:
            flow_inst_id = yield from _trigger_once(caller, op, since)
            return Started(flow_inst_id, at, trigger_ms)
        except EnOSAPIError as refusal:
            if refusal.code != EnOSCode.BP_INVALID_PARAMETER or isinstance(refusal, EnOSAuthenticationError):
                raise
            flow_id = op.body["flowId"]  # type: ignore[index]
            taken = yield from instances_at(caller, flow_id, [at])
            if taken and index + 1 < len(times):
                index += 1
                caller.log.warning(
                    "EnOS refused flow %s at trigger time %s (%s), which instance %s already has; "
                    "triggering at %s instead, the next minute of that hour (asked for %s)",
                    flow_id, describe(at), refusal.message, taken[0].get("instanceId"),
                    describe(times[index]), describe(trigger_ms),
                )  # fmt: skip
                continue
            if taken and waited >= len(waits):
                raise EnOSError(
                    f"EnOS refused flow {flow_id} at every minute from {describe(trigger_ms)} to the end "
                    f"of that hour ({refusal.message}); the last, {describe(at)}, has instance "
                    f"{taken[0].get('instanceId')}, and the hour has no later minute left. Give this "
                    "task a trigger_time of its own"
                ) from refusal
            if waited >= len(waits):
                raise EnOSError(
                    f"EnOS kept refusing flow {flow_id} at trigger time {describe(at)} for "
                    f"{sum(waits):.0f} s ({refusal.message}) although no instance has that time: "
                    "check that the flow (and the start task) exist"
                ) from refusal
            # No instance at this minute (or none left to try): a one-minute rule on the wall clock.
            # Minutes passed over as taken may have been refused by that rule too: start again
            # from the time asked for once it has passed.
            caller.log.warning(
                "EnOS refused flow %s at trigger time %s (%s)%s: waiting %.0f s (EnOS may refuse a "
                "second trigger of a flow within one minute), then triggering at %s again",
                flow_id, describe(at), refusal.message, "" if taken else " and no instance has that time",
                waits[waited], describe(trigger_ms),
            )  # fmt: skip
            yield Sleep(waits[waited])
            index, waited = 0, waited + 1


def _trigger_once(caller: Caller, op: Operation, since: int) -> Flow[str]:
    assert op.body is not None  # a trigger always has one
    flow_id, trigger_ms = op.body["flowId"], op.body["triggerTime"]

    def started_without_reply(err: EnOSError) -> Flow[dict[str, Any] | None]:
        # The trigger may have started the flow although no reply came: find that instance
        # instead of starting a second one. Only when EnOS shows none is repeating safe.
        zone = yield from time_zone(caller)
        found = own_instances(
            (yield from instances_at(caller, flow_id, [trigger_ms])), [trigger_ms], zone, since
        )
        if not found.own:
            return None
        if len(found.own) > 1:
            raise EnOSError(
                f"EnOS trigger of flow {flow_id} got no reply ({err}); {ambiguity(found)}"
            ) from err
        started = str(found.own[0].get("instanceId"))
        caller.log.warning(
            "EnOS trigger of flow %s got no reply (%s) but started flow instance %s (%s); using it",
            flow_id, err, started, found.compared,
        )  # fmt: skip
        return {"flowInstanceId": started}

    data = yield from caller.call(op, before_repeat=started_without_reply)
    instance_id = data.get("flowInstanceId") if isinstance(data, Mapping) else None
    if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
        # Never report "triggered" with an id no later call could use (digits, a dash, digits).
        what = f"{data!r:.200}"
        raise EnOSAPIError(
            f"the reply has no flowInstanceId in the documented shape: {what}", operation="trigger_flow"
        )
    return instance_id


def instances_at(caller: Caller, flow_id: int, times: Sequence[int]) -> Flow[list[dict[str, Any]]]:
    """Return the flow's instances whose trigger time lies in the seconds of ``times`` (one search series).

    :param caller: the hook call's context.
    :param flow_id: the workflow id.
    :param times: trigger times in ms, ascending.
    """
    window = {
        "from_trigger_time": times[0] - times[0] % 1000,
        "to_trigger_time": times[-1] - times[-1] % 1000 + 999,
    }
    return (yield from search_all(caller, search(flow_id=flow_id, filters=window), 100))


def time_zone(caller: Caller) -> Flow[timezone]:
    """Return the tenant's zone, in which EnOS writes its time strings (Get Timezone).

    :param caller: the hook call's context.
    """
    op = ops.GET_TIME_ZONE
    data = yield from read_object(caller, op)
    try:
        return parse_zone(data.get("timezone"))
    except ValueError as err:
        raise EnOSAPIError(f"the reply has no readable timezone: {err}", operation=op.name) from None


def task_log(caller: Caller, op: Operation) -> Flow[str]:
    """Return a task instance's log text.

    :param caller: the hook call's context.
    :param op: a Get Task Instance Log operation.
    """
    data = yield from read_object(caller, op)
    log = data.get("log")
    if not isinstance(log, str):
        raise EnOSAPIError(f"the reply has no log text: {data!r:.200}", operation=op.name)
    return log


def server_time(caller: Caller) -> Flow[int]:
    """Return EnOS's current time in ms since the epoch.

    :param caller: the hook call's context.
    """
    data = yield from caller.call(ops.GET_CURRENT_TIME)
    try:
        return int(data)
    except (TypeError, ValueError):
        raise EnOSAPIError(
            f"the reply is not a time in ms: {data!r:.200}", operation="get_server_time"
        ) from None


def expect_dict(data: Any, op: Operation) -> dict[str, Any]:
    """Return a reply's ``data`` when it is an object, else raise naming the call.

    :param data: the reply's ``data``.
    :param op: the call.
    """
    if not isinstance(data, Mapping):
        raise EnOSAPIError(
            f"expected an object in data, got {data!r:.200}", operation=op.name, flow_inst_id=op.flow_inst_id
        )
    return dict(data)
