"""Schedule DAGs on EnOS's own runs: an event trigger for ``AssetWatcher`` (Airflow 3.0+).

One watcher polls List Flow Instances for a flow's ended instances and fires one event per instance
that reached one of its statuses, oldest first. What it has announced is a
:class:`~airflow_enos_provider._watermark.Watermark`, kept in the watched asset's state store on
Airflow 3.3 and in memory before (``docs/howto/asset_watcher.rst`` says what each version
guarantees). On 3.3, watchers of one flow on one connection (and user, OU and poll interval) share
one poll (a shared stream in ack mode): each watermark is written only once Airflow confirmed that
the events it covers were stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_enos_provider._status import status_list
from airflow_enos_provider._validation import require_text, seconds, to_epoch_ms, to_flow_id
from airflow_enos_provider._watermark import LOOKBACK_MS, Ended, Watermark
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSError, EnOSValidationError
from airflow_enos_provider.status import EnOSFlowInstanceStatus

try:
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # Airflow 2: no event-driven scheduling; the constructor says so
    BaseEventTrigger = BaseTrigger  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from airflow.triggers.shared_stream import SharedStreamProducer

    from airflow_enos_provider.hooks.enos import EnOSHook

__all__ = ["EnOSFlowInstanceEventTrigger"]

log = logging.getLogger(__name__)

#: Polls between two reads of the flow's scheduling type (Get Flow), which the search needs.
_FLOW_TYPE_POLLS = 10
_FINAL = EnOSFlowInstanceStatus.final_statuses()
_STATE_KEY = "enos_flow_instance_event"
_MAX_STATE_KEY = 250  # the store allows 512 characters


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


class EnOSFlowInstanceEventTrigger(BaseEventTrigger):
    """Fire one event per instance of an EnOS flow that ends in one of ``statuses``, oldest first.

    For ``AssetWatcher(name=..., trigger=...)`` (Airflow 3.0+). Each event's payload:
    ``status`` (the status name), ``flow_inst_id``, ``flow_id``, ``flow_name``, ``trigger_time`` (ms),
    ``trigger_time_iso``, ``business_date``, ``start_time`` and ``end_time`` (ISO 8601 in the
    tenant's zone). A refusal that polling again cannot cure (unknown flow, no permission, bad
    credentials) fires one event with ``status`` ``"error"`` and a ``message``; the watcher then keeps
    polling at ``poll_interval`` and carries on, missing nothing, once the refusal is lifted.
    Transient failures (connection, timeouts, 429, 5xx, 62109) are polled through, logged as the
    other waits log them.

    :param flow_id: the workflow to watch.
    :param flow_name: instead of ``flow_id``, its exact name (looked up when the watcher starts).
    :param statuses: the final statuses to announce (names, codes or members).
    :param poll_interval: seconds between polls.
    :param start_from: announce only instances that end at or after this time (ms since the epoch or
        an aware datetime); default: when the watcher first started (kept across restarts on
        Airflow 3.3).
    :param enos_conn_id: the ``enos`` connection.
    :param user_id: the EnOS user id; default: the connection's.
    :param org_id: the OU id; default: the connection's.
    """

    def __init__(
        self,
        flow_id: int | str | None = None,
        flow_name: str | None = None,
        statuses: Sequence[str] = ("SUCCESS",),
        poll_interval: float = 60.0,
        start_from: int | datetime | None = None,
        enos_conn_id: str = "enos_default",
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> None:
        if BaseEventTrigger is BaseTrigger:
            from airflow_enos_provider._compat import airflow_version

            raise EnOSValidationError(
                "EnOSFlowInstanceEventTrigger schedules DAGs through AssetWatcher, which needs Airflow "
                f"3.0 or later; this is Airflow {airflow_version()}"
            )
        super().__init__()  # type: ignore[no-untyped-call]
        if (flow_id is None) == (flow_name is None):
            raise EnOSValidationError("EnOSFlowInstanceEventTrigger takes flow_id or flow_name (one of them)")
        self.flow_id = None if flow_id is None else to_flow_id(flow_id)
        self.flow_name = None if flow_name is None else require_text(flow_name, "flow_name")
        wanted = status_list(statuses, "statuses")
        if not wanted:
            raise EnOSValidationError("statuses must name at least one final status")
        if active := [s.name for s in wanted if s not in _FINAL]:
            finals = ", ".join(sorted(s.name for s in _FINAL))
            raise EnOSValidationError(
                f"statuses: {', '.join(active)} is not a final status (an instance in it has not ended); "
                f"expected some of {finals}"
            )
        self.statuses = sorted(s.name for s in wanted)
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.start_from = None if start_from is None else to_epoch_ms(start_from, "start_from")
        self.enos_conn_id = require_text(enos_conn_id, "enos_conn_id")
        self.user_id = user_id
        self.org_id = org_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "flow_id": self.flow_id,
                "flow_name": self.flow_name,
                "statuses": list(self.statuses),
                "poll_interval": self.poll_interval,
                "start_from": self.start_from,
                "enos_conn_id": self.enos_conn_id,
                "user_id": self.user_id,
                "org_id": self.org_id,
            },
        )

    # ----------------------------------------------------------------- shared stream (Airflow 3.3)

    def shared_stream_key(self) -> Hashable | None:
        """Return what watchers that can share one poll have in common (statuses are filtered after)."""
        flow = ("flow_id", self.flow_id) if self.flow_id is not None else ("flow_name", self.flow_name)
        return ("enos-flow-instances", self.enos_conn_id, flow, self.user_id, self.org_id, self.poll_interval)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Poll the flow for instances in any final status; yield one :class:`Snapshot` per poll."""
        async for snapshot in _poll(kwargs, _FINAL):
            yield snapshot

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        """Return the ack-mode producer: it writes the watermarks once the events are stored."""
        from airflow_enos_provider.triggers._event_stream import SnapshotProducer

        return SnapshotProducer(cls.open_shared_stream(kwargs))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Turn each poll into this watcher's events: its statuses, not announced before, oldest first."""
        mark = await self._load()
        caught_up = False
        async for snapshot in shared_stream:
            if mark is None:
                since = self.start_from if self.start_from is not None else int(time.time() * 1000)
                mark = Watermark(since=since)
                await self._save(mark.to_json())  # where "from now" began, before anything is announced
                self.log.info("EnOS event watcher %s starts from %s", self._flow_label(), _iso(since))
            if snapshot.error is not None:
                if mark.reported_error != snapshot.cause:
                    mark.reported_error = snapshot.cause
                    yield self._error(snapshot.error)
            else:
                listed = list(snapshot.instances)
                if not caught_up and mark.horizon < snapshot.covers_from:
                    listed += await self._catch_up(snapshot, mark.horizon)
                caught_up = True
                mark.reported_error = None
                wanted = {EnOSFlowInstanceStatus[name] for name in self.statuses}
                for ended in mark.take(e for e in listed if e.status in wanted):
                    self.log.info(
                        "EnOS flow instance %s of flow %s ended %s at %s",
                        ended.flow_inst_id, snapshot.flow_id, ended.status.name,
                        _iso(ended.end_ms, snapshot.zone),
                    )  # fmt: skip
                    yield TriggerEvent(_payload(ended, snapshot))  # type: ignore[no-untyped-call]
            self._commit_after(snapshot, mark)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll on this watcher's own (Airflow 3.0-3.2, or no shared stream): its statuses only."""
        from airflow_enos_provider._transports.aio import clients_lease

        async def own_stream() -> AsyncIterator[Snapshot]:
            async for snapshot in _poll(
                self.serialize()[1], {EnOSFlowInstanceStatus[s] for s in self.statuses}
            ):
                yield snapshot
                # The filter moved past the poll: its events are with the triggerer (no confirmation
                # that they were stored exists outside a shared stream).
                await snapshot.commit()

        async with clients_lease():
            async for event in self.filter_shared_stream(own_stream()):
                yield event

    # ----------------------------------------------------------------- watermark in the asset state store

    def _commit_after(self, snapshot: Snapshot, mark: Watermark) -> None:
        """Have the watermark as of this poll written once the poll's events are stored (if it changed)."""
        value = mark.to_json()  # not later: the events of later polls are not stored yet
        if value != self.__dict__.get("_written"):
            snapshot.commits.append(lambda: self._save(value))

    def _state_key(self) -> str:
        flow = f"flow_id={self.flow_id}" if self.flow_id is not None else f"flow_name={self.flow_name}"
        key = (
            f"{_STATE_KEY}:{self.enos_conn_id}:{flow}:user_id={self.user_id or ''}:"
            f"org_id={self.org_id or ''}:statuses={','.join(self.statuses)}"
        )
        if len(key) > _MAX_STATE_KEY:
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            key = f"{key[: _MAX_STATE_KEY - 17]}~{digest}"
        return key

    def _accessors(self) -> list[Any]:
        # Airflow 3.3 gives an event trigger the state of the assets it watches (several when assets
        # share an identical watcher): the same watermark is kept on each. Before 3.3: none.
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return []
        found = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
        return found or [store]

    async def _load(self) -> Watermark | None:
        kept = [Watermark.from_json(await a.aget(self._state_key())) for a in self._accessors()]
        mark = Watermark.merged(m for m in kept if m is not None)
        if mark is not None:
            self.log.info(
                "EnOS event watcher %s resumes: announced up to %s, %s instance(s) within the lookback",
                self._flow_label(), _iso(mark.mark), len(mark.seen),
            )  # fmt: skip
        return mark

    async def _save(self, value: dict[str, Any]) -> None:
        for accessor in self._accessors():
            await accessor.aset(self._state_key(), value)
        self.__dict__["_written"] = value

    # ----------------------------------------------------------------- helpers

    async def _catch_up(self, snapshot: Snapshot, horizon: int) -> list[Ended]:
        # The stream's polls began after this watcher's horizon (a restart after a gap): read the gap.
        assert snapshot.flow_id is not None
        self.log.info(
            "EnOS event watcher %s catches up on instances that ended since %s",
            self._flow_label(), _iso(horizon, snapshot.zone),
        )  # fmt: skip
        hook = _hook(self.enos_conn_id)
        wanted = [EnOSFlowInstanceStatus[s] for s in self.statuses]
        listed, _ = await hook._aended_instances(
            snapshot.flow_id, snapshot.types, wanted, horizon, self.user_id, self.org_id
        )
        return listed

    def _error(self, message: str) -> TriggerEvent:
        self.log.error("EnOS event watcher %s: %s", self._flow_label(), message)
        payload = {
            "status": "error",
            "flow_id": self.flow_id,
            "flow_name": self.flow_name,
            "message": message,
        }
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    def _flow_label(self) -> str:
        return f"flow {self.flow_id}" if self.flow_id is not None else f"flow {self.flow_name!r}"


def _hook(enos_conn_id: str) -> EnOSHook:
    from airflow_enos_provider.hooks.enos import EnOSHook

    return EnOSHook(enos_conn_id)


async def _poll(
    kwargs: dict[str, Any], statuses: set[EnOSFlowInstanceStatus] | frozenset[Any]
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

    hook = _hook(kwargs["enos_conn_id"])
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
                flow_id = await hook.afind_flow(name, user_id=user_id, org_id=org_id)  # type: ignore[attr-defined]
            if not types or polls % _FLOW_TYPE_POLLS == 0:
                types = flow_type_of(await hook.aget_flow(flow_id, user_id=user_id, org_id=org_id))
            zone = await hook.aget_time_zone(user_id=user_id, org_id=org_id)
            listed, in_order = await hook._aended_instances(
                flow_id, types, statuses, horizon, user_id, org_id
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


def _payload(ended: Ended, snapshot: Snapshot) -> dict[str, Any]:
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
        "trigger_time_iso": None if trigger_ms is None else _iso(trigger_ms, zone),
        "business_date": None if trigger_ms is None else business_date(trigger_ms, zone).isoformat(),
        "start_time": None if start_ms is None else _iso(start_ms, zone),
        "end_time": _iso(ended.end_ms, zone),
    }


def _iso(ms: int, zone: timezone | None = None) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=zone or UTC).isoformat()
