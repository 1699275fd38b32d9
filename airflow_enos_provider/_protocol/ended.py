"""List the instances of one flow that ended at or after a time: the event watcher's search.

List Flow Instances (``list_flow_instances.md``) filters by trigger time, not by end time, and a
trigger time says little about when an instance ends: a backfill triggered today with a trigger
time of last year ends today, a queued instance ends long after its trigger time. So the search
takes every trigger time (1970-2100), the wanted final statuses, and sorts by ``endTime``
descending (a sorter the page documents); the pages are read until one reaches an instance that
ended before the time asked for. Instances that end while the pages are read only push older ones
down a page, so none is skipped.

Whether the gateway honours ``sorters`` is not something the provider takes on trust: when a page
is not in descending end order, the search stops relying on it, reads every page (within
:class:`~.search.Paging`'s bounds) and warns once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timezone
from typing import Any

from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.envelope import expect_dict
from airflow_enos_provider._protocol.flow import Caller, Flow
from airflow_enos_provider._protocol.reattach import parse_enos_time
from airflow_enos_provider._protocol.search import Paging, Search, instances_of, of_flow
from airflow_enos_provider._status import status_codes
from airflow_enos_provider._watermark import Ended
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSValidationError
from airflow_enos_provider.status import EnOSFlowInstanceStatus

#: Newest end first; among equal end times, newest created first (instances that end in the same
#: second stay on consecutive pages in a stable order).
END_ORDER = ({"field": "endTime", "order": "DESC"}, {"field": "createTime", "order": "DESC"})
PAGE_SIZE = 100


def ended_instances(
    caller: Caller,
    flow_id: int,
    types: Iterable[int],
    statuses: Iterable[EnOSFlowInstanceStatus],
    ended_since: int,
    zone: timezone,
    page_size: int = PAGE_SIZE,
) -> Flow[tuple[list[Ended], bool]]:
    """Return the flow's instances in one of ``statuses`` that ended at or after ``ended_since``.

    :param caller: the identity and limits of the calls.
    :param flow_id: the workflow.
    :param types: its scheduling type(s), one request series each (Get Flow's ``type``).
    :param statuses: the final statuses wanted.
    :param ended_since: ms since the epoch.
    :param zone: the tenant's zone, in which EnOS writes ``endTime``.
    :param page_size: instances per page.
    :return: the instances (any order), and whether every series was sorted as asked.
    """
    wanted = sorted(statuses)
    query = Search(types=None, expression=f"{flow_id}-", status=status_codes(wanted), flow_id=flow_id)
    found: dict[str, Ended] = {}
    sorted_ok = True
    for flow_type in types:
        paging = Paging(page_size)
        newest_first = True
        last_end: int | None = None
        while paging.ended is None:
            op = ops.search_flow_instances(query.body(flow_type), paging.page_no, page_size, list(END_ORDER))
            data = expect_dict((yield from caller.call(op)), op)
            page = paging.take(instances_of(data, op), data.get("count"))
            ends = [_ended(i, zone, op.name) for i in page if of_flow(i, flow_id)]
            for ended in ends:
                if last_end is not None and ended.end_ms > last_end:
                    newest_first = False
                last_end = ended.end_ms
                if ended.end_ms >= ended_since:
                    found.setdefault(ended.flow_inst_id, ended)
            if newest_first and last_end is not None and last_end < ended_since:
                break  # every later page ended earlier still
        sorted_ok = sorted_ok and newest_first
        paging.warn_if_capped(caller.log, f"of flow {flow_id} (type {flow_type})")
    return list(found.values()), sorted_ok


def _ended(instance: dict[str, Any], zone: timezone, operation: str) -> Ended:
    # A final status without a readable end time cannot be placed in the order: a malformed reply.
    instance_id = str(instance["instanceId"])
    end_ms = parse_enos_time(instance.get("endTime"), zone)
    if end_ms is None:
        raise EnOSAPIError(
            f"flow instance {instance_id} is listed with status {instance.get('status')!r} but no "
            f"readable endTime: {instance.get('endTime')!r:.40}",
            operation=operation,
            flow_inst_id=instance_id,
        )
    try:
        status = EnOSFlowInstanceStatus.parse(instance.get("status"), "status")
    except EnOSValidationError as err:
        raise EnOSAPIError(f"flow instance {instance_id}: {err}", operation=operation) from None
    return Ended(instance_id, end_ms, status, instance)
