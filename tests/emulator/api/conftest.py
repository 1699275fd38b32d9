"""The emulator API tests' own tenant (it overrides the suite's) and a signing HTTP client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import Client, make_seed


@pytest.fixture
def enos_seed() -> dict[str, Any]:
    # Overrides the suite's tenant: these tests need their own seed.
    return make_seed()


@pytest.fixture
def client(emulator: EnOSEmulator) -> Iterator[Client]:
    c = Client(emulator)
    yield c
    c.session.close()
