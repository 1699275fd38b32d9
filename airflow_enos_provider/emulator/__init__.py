"""Emulate the EnOS API gateway and Batch Processing Service v2.1 on a loopback HTTP port.

Used by the tests, the demo and by anyone trying DAGs without an EnOS tenant::

    with EnOSEmulator(seed, clock="manual") as emulator:
        ...  # point an EnOS connection at emulator.url
        emulator.state.advance(31)

Laid out by job, like a moto service: ``models`` (entities and their lifecycle), ``tasks``
(task instances, their graph entries and logs), ``seed``,
``state`` (the backend's typed operations), ``tokens``, ``responses`` (parse, call, render),
``routes`` (the routing table), ``auth``, ``recorder``, ``faults`` and ``server`` (HTTP plumbing).
A seed's parts (``SeedFlow``, ``SeedInstance``, ...) are typed in ``seed``; this package exports what
running an emulator takes.
"""

from __future__ import annotations

from airflow_enos_provider.emulator.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    STATUS_CODES,
    STATUS_NAMES,
    ManualClock,
    parse_status,
)
from airflow_enos_provider.emulator.recorder import RecordedRequest
from airflow_enos_provider.emulator.seed import Seed, load_seed_file
from airflow_enos_provider.emulator.server import EnOSEmulator, connection_json
from airflow_enos_provider.emulator.state import EmulatorState

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
    "connection_json",
    "load_seed_file",
    "parse_status",
]
