"""EnOSFlowInstanceEventTrigger on the emulator: one event per ended instance, never twice, none missed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from packaging.version import Version

from airflow_enos_provider._compat import airflow_version
from airflow_enos_provider._watermark import Watermark
from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.hooks.enos import EnOSHook
from airflow_enos_provider.status import EnOSFlowInstanceStatus
from airflow_enos_provider.triggers._event_polls import Snapshot, poll_flow
from airflow_enos_provider.triggers.flow_instance_event import EnOSFlowInstanceEventTrigger
from tests import enos_env as env

FLOW = 5001
OTHER_FLOW = 5002
POLL = 0.001  # the trigger's own pause between polls; tests step poll by poll, never by time
AIRFLOW_2 = Version(airflow_version()).major < 3
needs_airflow_3 = pytest.mark.skipif(AIRFLOW_2, reason="AssetWatcher came with Airflow 3.0")


class MemoryStore:
    """Stands in for Airflow 3.3's asset state store of one asset (the e2e test uses the real one)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes += 1


class Watch:
    """Drive a watcher poll by poll: each :meth:`poll` is one real List request series to the emulator.

    The watcher's filter runs as in the triggerer; a poll's watermark is written once the filter
    moved past the poll, as the ack-mode producer does once Airflow stored the events.
    """

    def __init__(self, trigger: EnOSFlowInstanceEventTrigger, statuses: Any = None) -> None:
        self.trigger = trigger
        kwargs = trigger.serialize()[1]
        wanted = statuses or {EnOSFlowInstanceStatus[name] for name in trigger.statuses}
        self.polls = poll_flow(kwargs, wanted)
        self.events: list[dict[str, Any]] = []
        self.go = asyncio.Event()
        self.done = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _stream(self) -> AsyncIterator[Snapshot]:
        while True:
            await self.go.wait()
            self.go.clear()
            snapshot = await self.polls.__anext__()
            yield snapshot
            await snapshot.commit()
            self.done.set()

    async def _consume(self) -> None:
        async for event in self.trigger.filter_shared_stream(self._stream()):
            self.events.append(event.payload)

    async def poll(self) -> list[dict[str, Any]]:
        """Run one poll; return the events it fired."""
        if self.task is None:
            self.task = asyncio.create_task(self._consume())
        before = len(self.events)
        self.done.clear()
        self.go.set()
        waiter = asyncio.create_task(self.done.wait())
        await asyncio.wait({waiter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            waiter.cancel()
            self.task.result()
        return self.events[before:]

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self.task
        await self.polls.aclose()


@pytest.fixture
def tenant(enos_conn):
    if AIRFLOW_2:
        pytest.skip("AssetWatcher came with Airflow 3.0")
    state = enos_conn.state
    state.add_flow(FLOW, name="nightly_export", owner=env.USER_ID)
    state.add_flow(OTHER_FLOW, name="other", owner=env.USER_ID)
    state.started_ms = ms(state)  # what the watchers start from, unless a test says otherwise
    return state


def ms(state) -> int:
    return int(state.now() * 1000)


def watcher(state, **kwargs: Any) -> EnOSFlowInstanceEventTrigger:
    kwargs.setdefault("flow_id", FLOW)
    kwargs.setdefault("start_from", state.started_ms)
    kwargs.setdefault("poll_interval", POLL)
    return EnOSFlowInstanceEventTrigger(**kwargs)


def run_script(script: Callable[[], Any]) -> Any:
    return env.run_async(script())


def polls(trigger: EnOSFlowInstanceEventTrigger, count: int = 1) -> list[list[dict[str, Any]]]:
    """Run ``count`` polls of a watcher that starts now; return each poll's events."""

    async def script():
        watch = Watch(trigger)
        done = [await watch.poll() for _ in range(count)]
        await watch.stop()
        return done

    return run_script(script)


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["flow_inst_id"] for e in events]


def test_three_instances_give_three_events_oldest_first(tenant):
    now = tenant.now()
    for n, end in ((1, 30), (2, 10), (3, 20)):
        tenant.schedule_instance(f"{FLOW}-20261204000{n}", FLOW, now + end)

    async def script():
        watch = Watch(watcher(tenant))
        first = await watch.poll()  # nothing ended yet
        tenant.advance(60)
        events = await watch.poll()
        again = await watch.poll()
        await watch.stop()
        return first, events, again

    first, events, again = run_script(script)
    assert first == [] and again == []
    assert ids(events) == [f"{FLOW}-202612040002", f"{FLOW}-202612040003", f"{FLOW}-202612040001"]
    event = events[0]
    assert (
        event["status"] == "SUCCESS" and event["flow_id"] == FLOW and event["flow_name"] == "nightly_export"
    )
    end = datetime.fromtimestamp(int(tenant.now() - 50), UTC)
    assert event["end_time"] == end.isoformat()  # the emulator's zone is GMT+0
    assert isinstance(event["trigger_time"], int) and event["trigger_time_iso"].endswith("+00:00")


def test_run_fires_the_events_on_its_own_poll(tenant):
    now = tenant.now()
    trigger = watcher(tenant)  # before the clock moves: the default start is the triggerer's clock
    for n in range(3):
        tenant.schedule_instance(f"{FLOW}-20261204010{n}", FLOW, now + 10 + n)
    tenant.advance(60)

    async def script():
        events = []
        async for event in trigger.run():
            events.append(event.payload)
            if len(events) == 3:
                return events
        return events

    assert ids(run_script(script)) == [f"{FLOW}-20261204010{n}" for n in range(3)]
    # statuses are filtered by EnOS: the watcher's own poll asks for SUCCESS only
    search = next(r for r in tenant.requests if r.operation == "flowInstances.search")
    assert search.body["status"] == "1"


@pytest.mark.parametrize(
    ("first", "late"),
    [
        pytest.param({"0202": 20}, {"0201": 10}, id="out of order: the late one ended before"),
        pytest.param({"0302": 10}, {"0301": 10, "0303": 10}, id="equal end times, listed a poll apart"),
    ],
)
def test_an_instance_listed_after_a_later_or_equal_end_is_announced_once(tenant, first, late):
    now = tenant.now()

    def add(instances: dict[str, int]) -> None:
        for suffix, end in instances.items():
            tenant.schedule_instance(f"{FLOW}-20261204{suffix}", FLOW, now + end)

    async def script():
        watch = Watch(watcher(tenant))
        add(first)
        tenant.advance(30)
        polls = [await watch.poll()]
        add(late)  # shows up already ended, after the first poll announced a later or equal end
        polls += [await watch.poll(), await watch.poll()]
        await watch.stop()
        return polls

    polls = run_script(script)
    assert [ids(p) for p in polls] == [
        [f"{FLOW}-20261204{s}" for s in first],
        [f"{FLOW}-20261204{s}" for s in late],
        [],
    ]


def test_statuses_filter_what_is_announced(tenant):
    now = tenant.now()
    tenant.schedule_instance(f"{FLOW}-202612040401", FLOW, now + 10, end_status="FAIL")
    tenant.schedule_instance(f"{FLOW}-202612040402", FLOW, now + 20)
    tenant.schedule_instance(f"{FLOW}-202612040403", FLOW, now + 30, end_status="CANCEL")
    tenant.advance(60)

    (events,) = polls(watcher(tenant, statuses=["FAIL", "CANCEL"]))
    assert [(e["flow_inst_id"], e["status"]) for e in events] == [
        (f"{FLOW}-202612040401", "FAIL"),
        (f"{FLOW}-202612040403", "CANCEL"),
    ]


def test_restart_with_the_stored_watermark_repeats_none_and_misses_none(tenant):
    store = MemoryStore()
    now = tenant.now()

    def make() -> EnOSFlowInstanceEventTrigger:
        trigger = watcher(tenant, start_from=None)
        trigger.asset_state_store = store
        return trigger

    async def script():
        watch = Watch(make())
        await watch.poll()  # first start: "from now" is stored
        tenant.schedule_instance(f"{FLOW}-202612040501", FLOW, now + 10)
        tenant.schedule_instance(f"{FLOW}-202612040502", FLOW, now + 20)
        tenant.advance(30)
        before = await watch.poll()
        await watch.stop()  # the triggerer goes away
        # while it is down: one more ends, and hours pass
        tenant.schedule_instance(f"{FLOW}-202612040503", FLOW, now + 40)
        tenant.advance(3 * 3600)
        again = Watch(make())
        after = await again.poll()
        later = await again.poll()
        await again.stop()
        return before, after, later

    before, after, later = run_script(script)
    assert ids(before) == [f"{FLOW}-202612040501", f"{FLOW}-202612040502"]
    assert ids(after) == [f"{FLOW}-202612040503"]
    assert later == []


def test_after_a_long_gap_the_watcher_catches_up_and_a_failed_catch_up_is_tried_again(tenant):
    store = MemoryStore()
    now = tenant.now()
    hour = 3600

    def make() -> EnOSFlowInstanceEventTrigger:
        trigger = watcher(tenant, start_from=int((now - 5 * hour) * 1000))
        trigger.asset_state_store = store
        return trigger

    async def script():
        watch = Watch(make())
        tenant.schedule_instance(f"{FLOW}-202612040901", FLOW, now - 4 * hour)
        before = await watch.poll()
        await watch.stop()
        # while the triggerer was down: an instance ended 3 hours ago, before the lookback of a new
        # stream's first poll, so only the watcher's catch-up read finds it
        tenant.schedule_instance(f"{FLOW}-202612040902", FLOW, now - 3 * hour)
        # the restarted stream's first search succeeds; the catch-up read then fails (every attempt)
        tenant.after(
            "flowInstances.search", lambda: tenant.inject("http_5xx", "flowInstances.search", times=4)
        )
        again = Watch(make())
        failed = await again.poll()
        after = await again.poll()
        later = await again.poll()
        await again.stop()
        return before, failed, after, later

    before, failed, after, later = run_script(script)
    assert ids(before) == [f"{FLOW}-202612040901"]
    assert failed == []
    assert ids(after) == [f"{FLOW}-202612040902"]
    assert later == []


def test_default_start_is_kept_across_a_restart(tenant):
    store = MemoryStore()

    async def script():
        first = watcher(tenant, start_from=None)
        first.asset_state_store = store
        watch = Watch(first)
        await watch.poll()
        await watch.stop()
        stored = Watermark.from_json(next(iter(store.values.values())))
        second = watcher(tenant, start_from=None)
        second.asset_state_store = store
        watch = Watch(second)
        await watch.poll()
        await watch.stop()
        return stored, Watermark.from_json(next(iter(store.values.values())))

    stored, later = run_script(script)
    assert stored is not None and later is not None and later.since == stored.since


def test_an_instance_that_ended_before_start_from_is_not_announced(tenant):
    now = tenant.now()
    tenant.schedule_instance(f"{FLOW}-202612040601", FLOW, now + 10)
    tenant.schedule_instance(f"{FLOW}-202612040602", FLOW, now + 30)
    tenant.advance(60)

    (events,) = polls(watcher(tenant, start_from=int((now + 20) * 1000)))
    assert ids(events) == [f"{FLOW}-202612040602"]


def test_an_outage_is_polled_through_and_nothing_is_missed(tenant, caplog):
    now = tenant.now()

    async def script():
        watch = Watch(watcher(tenant))
        await watch.poll()
        tenant.schedule_instance(f"{FLOW}-202612040701", FLOW, now + 10)
        tenant.advance(20)
        # every search fails for a while: the hook's retries, then the watcher's own polls, give up
        # on none of it
        tenant.inject("http_5xx", "flowInstances.search", times=12, status=503)
        events = await watch.poll()
        await watch.stop()
        return events

    events = run_script(script)
    assert ids(events) == [f"{FLOW}-202612040701"]
    assert "readable again after an outage" in caplog.text


def test_a_refusal_fires_one_error_event_and_the_watcher_carries_on(tenant):
    refused, refused_again = polls(watcher(tenant, user_id=env.LOCKED_USER_ID), 2)
    assert [e["status"] for e in refused] == ["error"]
    assert "62105" in refused[0]["message"]
    assert refused_again == []  # the same refusal is announced once


def test_an_unknown_flow_is_an_error_event(tenant):
    ((event,),) = polls(watcher(tenant, flow_id=5999))
    assert event["status"] == "error" and event["flow_id"] == 5999 and "5999" in event["message"]


@needs_airflow_3
def test_serialize_round_trip():
    trigger = EnOSFlowInstanceEventTrigger(
        flow_id="42",
        statuses=["SKIP", "SUCCESS"],
        poll_interval=5,
        start_from=datetime(2026, 12, 4, tzinfo=UTC),
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_enos_provider.triggers.flow_instance_event.EnOSFlowInstanceEventTrigger"
    assert kwargs["flow_id"] == 42 and kwargs["statuses"] == ["SKIP", "SUCCESS"]
    assert kwargs["start_from"] == 1_796_342_400_000
    assert EnOSFlowInstanceEventTrigger(**kwargs).serialize() == (path, kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "flow_id or flow_name"),
        ({"flow_id": 1, "flow_name": "x"}, "flow_id or flow_name"),
        ({"flow_id": 1, "statuses": ["RUNNING"]}, "statuses: RUNNING is not a final status"),
        ({"flow_id": 1, "statuses": ["DONE"]}, "statuses"),
        ({"flow_id": 1, "statuses": []}, "statuses"),
        ({"flow_id": 1, "poll_interval": 0}, "poll_interval"),
        ({"flow_id": 1, "start_from": datetime(2026, 12, 4)}, "start_from"),
        ({"flow_id": "x"}, "flow_id"),
    ],
)
@needs_airflow_3
def test_bad_arguments_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(EnOSValidationError, match=field):
        EnOSFlowInstanceEventTrigger(**kwargs)


@needs_airflow_3
def test_watchers_of_one_flow_share_a_key_and_differ_by_flow():
    a = EnOSFlowInstanceEventTrigger(flow_id=1, statuses=["SUCCESS"])
    b = EnOSFlowInstanceEventTrigger(flow_id=1, statuses=["FAIL"])
    c = EnOSFlowInstanceEventTrigger(flow_id=2)
    assert a.shared_stream_key() == b.shared_stream_key() != c.shared_stream_key()


def test_without_event_triggers_the_trigger_says_it_needs_airflow_3(monkeypatch):
    from airflow.triggers.base import BaseTrigger

    from airflow_enos_provider.triggers import flow_instance_event

    # What the module falls back to on Airflow 2.11, where it still imports.
    monkeypatch.setattr(flow_instance_event, "BaseEventTrigger", BaseTrigger)
    with pytest.raises(EnOSValidationError, match=r"AssetWatcher, which needs Airflow 3\.0 or later"):
        EnOSFlowInstanceEventTrigger(flow_id=1)


def test_watchers_of_one_flow_share_one_poll_and_write_after_the_events_are_stored(tenant):
    """Five watchers through Airflow 3.3's own SharedStreamManager (ack mode), as the triggerer runs them."""
    shared_stream = pytest.importorskip("airflow.triggers.shared_stream")
    now = tenant.now()
    tenant.schedule_instance(f"{FLOW}-202612040801", FLOW, now + 10)
    tenant.schedule_instance(f"{FLOW}-202612040802", FLOW, now + 20, end_status="FAIL")
    tenant.schedule_instance(f"{FLOW}-202612040803", FLOW, now + 30)
    tenant.schedule_instance(f"{OTHER_FLOW}-202612040804", OTHER_FLOW, now + 30)
    tenant.advance(60)
    wanted = [["SUCCESS"], ["SUCCESS"], ["SUCCESS"], ["FAIL"], ["FAIL", "SUCCESS"]]
    # one poll in the test's lifetime: the first, when the group starts
    triggers = [watcher(tenant, statuses=s, poll_interval=3600) for s in wanted]
    stores = [MemoryStore() for _ in triggers]
    for trigger, store in zip(triggers, stores, strict=True):
        trigger.asset_state_store = store

    async def script():
        manager = shared_stream.SharedStreamManager()
        key = triggers[0].shared_stream_key()
        events: dict[int, list[dict[str, Any]]] = {n: [] for n in range(len(triggers))}
        seqs: list[int] = []
        all_fired = asyncio.Event()
        expected = 2 + 2 + 2 + 1 + 3

        async def run(n: int) -> None:
            stream = manager.subscribe(trigger_id=n, trigger=triggers[n], key=key)
            async for event in triggers[n].filter_shared_stream(stream):
                seq = manager.bind_pending_event(trigger_id=n, key=key)  # as the triggerer does
                seqs.append(seq)
                events[n].append(event.payload)
                if sum(map(len, events.values())) == expected:
                    all_fired.set()

        tasks = [asyncio.create_task(run(n)) for n in range(len(triggers))]
        await all_fired.wait()
        written_before = [dict(store.values) for store in stores]
        written = asyncio.Event()
        for store in stores:
            store.aset = _notify_after(store.aset, stores, written)  # type: ignore[method-assign]
        manager.confirm_persisted(seqs)  # the supervisor stored the events
        await written.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.stop_all()
        return events, written_before, seqs

    events, written_before, seqs = run_script(script)
    assert None not in seqs  # ack mode: every event gates the watermark writes
    assert [ids(events[n]) for n in range(5)] == [
        [f"{FLOW}-202612040801", f"{FLOW}-202612040803"],
        [f"{FLOW}-202612040801", f"{FLOW}-202612040803"],
        [f"{FLOW}-202612040801", f"{FLOW}-202612040803"],
        [f"{FLOW}-202612040802"],
        [f"{FLOW}-202612040801", f"{FLOW}-202612040802", f"{FLOW}-202612040803"],
    ]
    assert tenant.count("flowInstances.search") == 1  # one List request for the five watchers
    assert tenant.count("flows.get") == 1
    # before the events were stored only the start was written; after, each watermark holds its events
    assert all(Watermark.from_json(next(iter(w.values()))).seen == {} for w in written_before)
    for store, n in zip(stores, range(5), strict=True):
        mark = Watermark.from_json(next(iter(store.values.values())))
        assert sorted(mark.seen) == sorted(ids(events[n]))


def _notify_after(aset, stores, written: asyncio.Event):
    async def wrapped(key: str, value: Any) -> None:
        await aset(key, value)
        if all(Watermark.from_json(v).seen for s in stores for v in s.values.values()):
            written.set()

    return wrapped


# EnOSHook.afind_flow comes with helper h2's branch (Search Flow); until it is merged these two skip.
needs_find_flow = pytest.mark.skipif(
    not hasattr(EnOSHook, "afind_flow"), reason="EnOSHook.afind_flow is not merged yet"
)


@needs_find_flow
def test_a_flow_named_is_looked_up_and_watched(tenant):
    now = tenant.now()
    tenant.schedule_instance(f"{FLOW}-202612041001", FLOW, now + 10)
    tenant.advance(20)

    ((event,),) = polls(watcher(tenant, flow_id=None, flow_name="nightly_export"))
    assert event["flow_inst_id"] == f"{FLOW}-202612041001" and event["flow_id"] == FLOW


@needs_find_flow
def test_an_unknown_flow_name_is_an_error_event(tenant):
    ((event,),) = polls(watcher(tenant, flow_id=None, flow_name="no_such_flow"))
    assert event["status"] == "error" and event["flow_name"] == "no_such_flow"
    assert "no_such_flow" in event["message"]
