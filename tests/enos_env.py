"""The test tenant: credentials, seed, and how tests point an ``enos`` connection at the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from airflow_enos_provider.emulator import EnOSEmulator
from airflow_enos_provider.emulator import connection_json as emulator_connection_json
from airflow_enos_provider.status import EnOSFlowInstanceStatus as Status
from airflow_enos_provider.testing.fixtures import running_emulator

T = TypeVar("T")

ACCESS_KEY = "ak-test-5c1e9b20"
SECRET_KEY = "sk-test-secret-7f3d2a91c4e8"
USER_ID = "u-owner"
ORG_ID = "o-test"
OTHER_USER_ID = "u-other"
LOCKED_USER_ID = "u-locked"
FLOW_ID = 2438
LOCKED_FLOW_ID = 2439
IDLE_FLOW_ID = 2440  # no instance yet, so it can be triggered
RUNNING_ID = "2438-201908081020"
SUCCEEDED_ID = "2438-201908071020"
LOCKED_FLOW_INSTANCE_ID = "2439-201908081020"

SEED = {
    "apps": [{"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}],
    "users": [
        {"user_id": USER_ID, "org_id": ORG_ID},
        {"user_id": OTHER_USER_ID, "org_id": ORG_ID},
        {"user_id": LOCKED_USER_ID, "org_id": ORG_ID, "locked": True},
    ],
    "flows": [
        {"flow_id": FLOW_ID, "name": "daily_load", "owner": USER_ID, "tasks": ["extract", "load"]},
        {"flow_id": LOCKED_FLOW_ID, "name": "locked_flow", "owner": USER_ID, "locked": True},
        {"flow_id": IDLE_FLOW_ID, "name": "hourly_export", "owner": USER_ID, "tasks": ["export"]},
    ],
    "instances": [
        {"instance_id": RUNNING_ID, "flow_id": FLOW_ID, "status": "RUNNING"},
        {"instance_id": SUCCEEDED_ID, "flow_id": FLOW_ID, "status": "SUCCESS"},
        {"instance_id": LOCKED_FLOW_INSTANCE_ID, "flow_id": LOCKED_FLOW_ID, "status": "RUNNING"},
    ],
}

# Every secret the suite handed out, for the log leak check.
SECRETS_SEEN: set[str] = {SECRET_KEY}


@contextmanager
def start_emulator(seed: dict[str, Any] = SEED, **kwargs: Any) -> Iterator[EnOSEmulator]:
    """Run a seeded emulator like the pytest plugin's ``enos_emulator`` (manual clock unless told).

    Every token it issued and signature it saw joins :data:`SECRETS_SEEN` when it stops.

    :param seed: the tenant to load; the test tenant unless a test needs its own.
    :param kwargs: more :class:`EnOSEmulator` arguments (``clock=None`` for wall-clock time, ``tls``...).
    """
    with running_emulator(seed, **kwargs) as emulator:
        try:
            yield emulator
        finally:
            remember_secrets(emulator)


def remember_secrets(emulator: EnOSEmulator) -> None:
    """Add every token ``emulator`` issued and signature it saw to :data:`SECRETS_SEEN`."""
    SECRETS_SEEN.update(emulator.state.issued_tokens())
    SECRETS_SEEN.update(emulator.state.seen_signatures())


def run_async(awaitable: Awaitable[T]) -> T:
    """Run a coroutine in a fresh event loop, closing the loop's shared HTTP sessions afterwards."""
    from airflow_enos_provider._transports.aio import aclose_clients as aclose_async_clients

    async def run() -> T:
        try:
            return await awaitable
        finally:
            await aclose_async_clients()

    return asyncio.run(run())


def connection_json(
    url: str,
    *,
    secret_key: str = SECRET_KEY,
    org_id: object = ORG_ID,
    user_id: object = USER_ID,
    **extra: object,
) -> str:
    """Return an ``AIRFLOW_CONN_...`` value for the test tenant on the emulator at ``url``.

    :param url: the emulator's URL.
    :param secret_key: the secret key to store; tests of a wrong secret pass another.
    :param org_id: the ``org_id`` extra; tests may blank it.
    :param user_id: the ``user_id`` extra; tests may blank it.
    :param extra: more extras, e.g. ``verify``.
    """
    return emulator_connection_json(
        url, access_key=ACCESS_KEY, secret_key=secret_key, org_id=org_id, user_id=user_id, **extra
    )


def secrets_with(emulator: EnOSEmulator) -> set[str]:
    """Return :data:`SECRETS_SEEN` plus what a still running ``emulator`` issued and saw so far.

    :param emulator: an emulator that has not stopped yet (its secrets join SECRETS_SEEN only then).
    """
    return {*SECRETS_SEEN, *emulator.state.issued_tokens(), *emulator.state.seen_signatures()}


def assert_no_secret(text: str, where: str, secrets: Iterable[str] | None = None) -> None:
    """Fail if ``text`` holds a secret, naming only a 6-character prefix of each one found.

    :param text: what to search.
    :param where: names the text in the failure.
    :param secrets: the secrets to look for; by default every one the suite handed out so far
        (:data:`SECRETS_SEEN`).
    """
    leaked = sorted(
        s[:6] + "..." for s in set(SECRETS_SEEN if secrets is None else secrets) if s and s in text
    )
    assert not leaked, f"secret material in {where}: {leaked}"


def finish_when_read(state, status: str = "SUCCESS") -> None:
    """Make every instance final at the next read that reaches the backend."""

    def finish() -> None:
        for instance_id in state.instance_ids():
            if state.instance_status(instance_id) in {Status.RUNNING, Status.WAIT, Status.READY, Status.INIT}:
                state.set_instance_status(instance_id, status)

    state.after("flowInstances.get", finish)


class Store:
    """Airflow 3.3's task state store as a task instance sees it (get/set across tries)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def get(self, key: str, default: object = None) -> object:
        return self.values.get(key, default)

    def set(self, key: str, value: object) -> None:
        self.values[key] = value
