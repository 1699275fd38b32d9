"""Emulate the EnOS API gateway and Batch Processing Service v2.1 on a loopback HTTP port.

Used by the tests, the demo and by anyone trying DAGs without an EnOS tenant::

    with EnOSEmulator(seed, clock="manual") as emulator:
        ...  # point an EnOS connection at emulator.url
        emulator.state.advance(31)
"""

from __future__ import annotations

from airflow_enos_provider.emulator.server import EnOSEmulator, connection_json, load_seed_file
from airflow_enos_provider.emulator.state import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    STATUS_CODES,
    STATUS_NAMES,
    EmulatorState,
    ManualClock,
    RecordedRequest,
    Seed,
    SeedApp,
    SeedFlow,
    SeedInstance,
    SeedSettings,
    SeedUser,
    parse_status,
)

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "STATUS_CODES",
    "STATUS_NAMES",
    "EmulatorState",
    "EnOSEmulator",
    "ManualClock",
    "RecordedRequest",
    "Seed",
    "SeedApp",
    "SeedFlow",
    "SeedInstance",
    "SeedSettings",
    "SeedUser",
    "connection_json",
    "load_seed_file",
    "parse_status",
]
