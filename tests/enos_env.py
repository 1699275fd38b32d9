"""The test tenant: credentials, seed, and how tests point an ``enos`` connection at the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from airflow_enos_provider.emulator import EnOSEmulator
from airflow_enos_provider.emulator import connection_json as emulator_connection_json

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
def start_emulator(**kwargs) -> Iterator[EnOSEmulator]:
    """Run a seeded emulator on a free loopback port, with a manual clock unless told otherwise."""
    from airflow_enos_provider.hooks.enos import _TOKENS

    _TOKENS.clear()  # a port can be reused by the next emulator, whose tokens differ
    kwargs.setdefault("clock", "manual")
    with EnOSEmulator(SEED, **kwargs) as emulator:
        try:
            yield emulator
        finally:
            SECRETS_SEEN.update(emulator.state.issued_tokens())
            SECRETS_SEEN.update(emulator.state.seen_signatures())


def run_async(awaitable: Awaitable[T]) -> T:
    """Run a coroutine in a fresh event loop, closing the loop's shared HTTP sessions afterwards."""
    from airflow_enos_provider.hooks.enos import aclose_async_clients

    async def run() -> T:
        try:
            return await awaitable
        finally:
            await aclose_async_clients()

    return asyncio.run(run())


def connection_json(url: str, **extra: object) -> str:
    """Return an ``AIRFLOW_CONN_...`` value for the test tenant on the emulator at ``url``."""
    extras: dict[str, object] = {"org_id": ORG_ID, "user_id": USER_ID, **extra}  # tests may blank these
    return emulator_connection_json(
        url,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        org_id=extras.pop("org_id"),
        user_id=extras.pop("user_id"),
        **extras,
    )
