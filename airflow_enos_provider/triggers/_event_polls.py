"""One flow's polls for the event watcher: a snapshot per poll, the events' payload.

Used by :mod:`airflow_enos_provider.triggers.flow_instance_event` on every Airflow 3.x (its own poll,
or the shared stream's on 3.3).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_enos_provider._watermark import LOOKBACK_MS, Ended
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSError
from airflow_enos_provider.status import EnOSFlowInstanceStatus

if TYPE_CHECKING:
    from airflow_enos_provider.hooks.enos import EnOSHook

log = logging.getLogger(__name__)

#: Polls between two reads of the flow's scheduling type (Get Flow), which the search needs.
FLOW_TYPE_POLLS = 10


@dataclass
class Snapshot:
    """One poll of a flow: every instance in the polled statuses that ended at or after ``covers_from``.

    The raw event of the shared stream (in-process only, never serialized). ``commits`` collects the
    watermark writes of the watchers that handled it; they run once Airflow stored the events.
    """

    seq: int
    flow_id: int | None
    covers_from: int
    instances: tuple[Ended, ...] = ()
    zone: timezone | None = None
    types: tuple[int, ...] = ()
    error: str | None = None
    cause: str | None = None
    commits: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def commit(self) -> None:
        """Write the watermarks of the watchers that handled this poll."""
        for write in self.commits:
            await write()
        self.commits.clear()


def hook_for(enos_conn_id: str) -> EnOSHook:
    from airflow_enos_provider.hooks.enos import EnOSHook

    return EnOSHook(enos_conn_id)


async def poll_flow(
    kwargs: dict[str, Any], statuses: Iterable[EnOSFlowInstanceStatus]
) -> AsyncIterator[Snapshot]:
    """Poll one flow forever: one :class:`Snapshot` per poll, or per refusal that polling cannot cure.

    Each poll covers the instances that ended at or after the horizon: the lookback before the newest
    end time seen so far (at first, before now). Transient failures are polled through with the
    waits' :class:`~airflow_enos_provider._protocol.retry.Outage` (no limit: a watcher never gives up).

    :param kwargs: a watcher's serialized arguments (only the shared-stream key's fields are used).
    :param statuses: the statuses to list.
    """
    from airflow_enos_provider._protocol.retry import Outage
    from airflow_enos_provider._protocol.search import flow_type_of

    hook = hook_for(kwargs["enos_conn_id"])
    user_id, org_id = kwargs["user_id"], kwargs["org_id"]
    poll_interval = float(kwargs["poll_interval"])
    name = kwargs["flow_name"]
    flow_id: int | None = kwargs["flow_id"]
    what = f"of flow {flow_id if flow_id is not None else repr(name)}"
    outage = Outage(None, poll_interval)
    types: tuple[int, ...] = ()
    horizon = int(time.time() * 1000) - LOOKBACK_MS
    polls = seq = 0
    unsorted_warned = False
    while True:
        try:
            if flow_id is None:
                flow_id = await hook.afind_flow(name, user_id=user_id, org_id=org_id)
            if not types or polls % FLOW_TYPE_POLLS == 0:
                types = flow_type_of(await hook.aget_flow(flow_id, user_id=user_id, org_id=org_id))
            zone = await hook.aget_time_zone(user_id=user_id, org_id=org_id)
            listed, in_order = await hook._aended_instances(
                flow_id, types, statuses, horizon, zone, user_id, org_id
            )
        except EnOSError as err:
            step = outage.read_failed(log, what, err, time.monotonic())
            seq += 1
            if step.give_up:
                if name is not None:
                    flow_id = None  # look the name up again: the flow may be renamed or recreated
                types = ()
                error = f"EnOS refused to list the instances {what}: {err}"
                yield Snapshot(seq, flow_id, horizon, error=error, cause=_cause(err))
                await asyncio.sleep(poll_interval)
            else:
                await asyncio.sleep(step.pause)
            continue
        outage.read_again(log, what, time.monotonic())
        if not in_order and not unsorted_warned:
            unsorted_warned = True
            log.warning(
                "EnOS listed the instances %s out of the endTime order asked for: every page is read "
                "at each poll from now on",
                what,
            )
        polls += 1
        seq += 1
        yield Snapshot(seq, flow_id, horizon, tuple(listed), zone, types)
        if listed:
            horizon = max(horizon, max(e.end_ms for e in listed) - LOOKBACK_MS)
        await asyncio.sleep(poll_interval)


def _cause(err: EnOSError) -> str:
    # What makes two refusals the same one (the request id differs each time).
    if isinstance(err, EnOSAPIError):
        return f"{type(err).__name__}:{err.operation}:{err.code}:{err.http_status}:{err.message}"
    return f"{type(err).__name__}:{err}"


def payload(ended: Ended, snapshot: Snapshot) -> dict[str, Any]:
    from airflow_enos_provider._protocol.reattach import business_date, parse_enos_time

    zone = snapshot.zone or UTC
    instance = ended.instance
    trigger_ms = parse_enos_time(instance.get("triggerTime"), zone)
    start_ms = parse_enos_time(instance.get("startTime"), zone)
    return {
        "status": ended.status.name,
        "flow_inst_id": ended.flow_inst_id,
        "flow_id": snapshot.flow_id,
        "flow_name": instance.get("flowName"),
        "trigger_time": trigger_ms,
        "trigger_time_iso": None if trigger_ms is None else iso(trigger_ms, zone),
        "business_date": None if trigger_ms is None else business_date(trigger_ms, zone).isoformat(),
        "start_time": None if start_ms is None else iso(start_ms, zone),
        "end_time": iso(ended.end_ms, zone),
    }


def iso(ms: int, zone: timezone | None = None) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=zone or UTC).isoformat()
