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

import hashlib
import time
from collections.abc import AsyncIterator, Hashable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_enos_provider._status import status_list
from airflow_enos_provider._validation import require_text, seconds, to_epoch_ms, to_flow_id
from airflow_enos_provider._watermark import Ended, Watermark
from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError
from airflow_enos_provider.status import EnOSFlowInstanceStatus
from airflow_enos_provider.triggers._event_polls import Snapshot, hook_for, iso, payload, poll_flow

try:
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # Airflow 2: no event-driven scheduling; the constructor says so
    BaseEventTrigger = BaseTrigger  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from airflow.triggers.shared_stream import SharedStreamProducer


__all__ = ["EnOSFlowInstanceEventTrigger"]

_FINAL = EnOSFlowInstanceStatus.final_statuses()
_STATE_KEY = "enos_flow_instance_event"
_MAX_STATE_KEY = 250  # the store allows 512 characters


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
        an aware datetime); default: the second the watcher first started in (kept across restarts
        on Airflow 3.3).
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
        """Poll the flow for instances in any final status; yield one snapshot per poll."""
        async for snapshot in poll_flow(kwargs, _FINAL):
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
                # EnOS writes end times to the second: "from now" starts at this second's beginning, or
                # an instance ending later in the same second would read as ending before it.
                since = self.start_from if self.start_from is not None else int(time.time()) * 1000
                mark = Watermark(since=since)
                await self._save(mark.to_json())  # where "from now" began, before anything is announced
                self.log.info("EnOS event watcher %s starts from %s", self._flow_label(), iso(since))
            if snapshot.error is not None:
                if mark.reported_error != snapshot.cause:
                    mark.reported_error = snapshot.cause
                    yield self._error(snapshot.error)
            else:
                listed = list(snapshot.instances)
                if not caught_up and mark.horizon < snapshot.covers_from:
                    gap = await self._catch_up(snapshot, mark.horizon)
                    if gap is None:
                        continue  # taking this poll alone could move the horizon past the gap
                    listed += gap
                caught_up = True
                mark.reported_error = None
                wanted = {EnOSFlowInstanceStatus[name] for name in self.statuses}
                for ended in mark.take(e for e in listed if e.status in wanted):
                    self.log.info(
                        "EnOS flow instance %s of flow %s ended %s at %s",
                        ended.flow_inst_id, snapshot.flow_id, ended.status.name,
                        iso(ended.end_ms, snapshot.zone),
                    )  # fmt: skip
                    yield TriggerEvent(payload(ended, snapshot))  # type: ignore[no-untyped-call]
            self._commit_after(snapshot, mark)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll on this watcher's own (Airflow 3.0-3.2, or no shared stream): its statuses only."""
        from airflow_enos_provider._transports.aio import clients_lease

        async def own_stream() -> AsyncIterator[Snapshot]:
            async for snapshot in poll_flow(
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
                self._flow_label(), iso(mark.mark), len(mark.seen),
            )  # fmt: skip
        return mark

    async def _save(self, value: dict[str, Any]) -> None:
        for accessor in self._accessors():
            await accessor.aset(self._state_key(), value)
        self.__dict__["_written"] = value

    # ----------------------------------------------------------------- helpers

    async def _catch_up(self, snapshot: Snapshot, horizon: int) -> list[Ended] | None:
        """Read the instances that ended between this watcher's horizon and the stream's first poll.

        The stream's polls began after the horizon (a restart after a gap). Returns None when the read
        failed: the next poll tries again, and until then nothing is announced.
        """
        assert snapshot.flow_id is not None
        self.log.info(
            "EnOS event watcher %s catches up on instances that ended since %s",
            self._flow_label(), iso(horizon, snapshot.zone),
        )  # fmt: skip
        hook = hook_for(self.enos_conn_id)
        wanted = [EnOSFlowInstanceStatus[s] for s in self.statuses]
        try:
            zone = snapshot.zone or await hook.aget_time_zone(user_id=self.user_id, org_id=self.org_id)
            listed, _ = await hook._aended_instances(
                snapshot.flow_id, snapshot.types, wanted, horizon, zone, self.user_id, self.org_id
            )
        except EnOSError as err:
            self.log.warning(
                "EnOS event watcher %s could not catch up (%s); trying again at the next poll",
                self._flow_label(), err,
            )  # fmt: skip
            return None
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
