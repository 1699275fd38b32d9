"""Batch Processing procedures built from calls: each is one flow that the sync and async hooks share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider._protocol.flow import Caller, Flow
from airflow_enos_provider._protocol.operations import Operation
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


def trigger(caller: Caller, op: Operation) -> Flow[str]:
    """Start a workflow and return the new instance id, never starting it twice for one call.

    :param caller: the hook call's context.
    :param op: a trigger operation (:func:`~.operations.trigger_flow`).
    """
    assert op.body is not None  # a trigger always has one
    flow_id, trigger_ms = op.body["flowId"], op.body["triggerTime"]

    def started_without_reply(err: EnOSError) -> Flow[dict[str, Any] | None]:
        # The trigger may have started the flow although no reply came: find that instance
        # instead of starting a second one. Only when EnOS shows none is repeating safe.
        started = yield from instance_triggered_at(caller, flow_id, trigger_ms)
        if started is None:
            return None
        caller.log.warning(
            "EnOS trigger of flow %s got no reply (%s) but started flow instance %s; using it",
            flow_id, err, started,
        )  # fmt: skip
        return {"flowInstanceId": started}

    data = yield from caller.call(op, before_repeat=started_without_reply)
    instance_id = data.get("flowInstanceId") if isinstance(data, Mapping) else None
    if not isinstance(instance_id, str) or not instance_id:
        raise EnOSAPIError(f"the reply has no flowInstanceId: {data!r:.200}", operation="trigger_flow")
    return instance_id


def instance_triggered_at(caller: Caller, flow_id: int, trigger_ms: int) -> Flow[str | None]:
    """Return the one instance of ``flow_id`` triggered within a second of ``trigger_ms``, if exactly one.

    :param caller: the hook call's context.
    :param flow_id: the workflow id.
    :param trigger_ms: the trigger time that was sent.
    """
    window = {"from_trigger_time": max(0, trigger_ms - 1000), "to_trigger_time": trigger_ms + 1000}
    found = yield from search_all(caller, search(flow_id=flow_id, filters=window), 100)
    ids = [str(i["instanceId"]) for i in found]
    return ids[0] if len(ids) == 1 else None


def instances_at_times(caller: Caller, flow_id: int, times: list[int]) -> Flow[dict[int, list[str]]]:
    """Return, per trigger time, the ids of the flow's instances triggered within a second of it.

    One Get Flow for the flow's scheduling type, then one search per time.

    :param caller: the hook call's context.
    :param flow_id: the workflow id.
    :param times: trigger times in ms.
    """
    typed = yield from with_flow_type(caller, search(flow_id=flow_id, filters={}))
    found: dict[int, list[str]] = {}
    for trigger_ms in times:
        window = {"from_trigger_time": max(0, trigger_ms - 1000), "to_trigger_time": trigger_ms + 1000}
        query = replace(search(flow_id=flow_id, filters=window), types=typed.types)
        found[trigger_ms] = [str(i["instanceId"]) for i in (yield from search_all(caller, query, 100))]
    return found


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
