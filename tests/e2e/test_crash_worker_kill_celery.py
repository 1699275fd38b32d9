"""Crash test with the CeleryExecutor: a Celery worker's task process SIGKILLed mid-wait.

What the LocalExecutor test checks, where the retry may run on the other worker: re-attaching
must need nothing the killed process held. Notes which worker ran each try.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.e2e import crash
from tests.e2e.airflow_stack import AirflowStack
from tests.e2e.test_real_scheduler_kill_celery import worker_of

pytestmark = pytest.mark.timeout(420)


def test_a_sigkilled_celery_task_is_retried_and_reattaches(
    celery_airflow: AirflowStack, enos: EnOSEmulator, record_property: Callable[..., None]
):
    first, final = crash.sigkill_worker_wait(celery_airflow, enos, "e2e_enos_retry_in_worker", flow_id=5401)
    record_property(
        "workers", f"try 1 on {worker_of(celery_airflow, first)}, try 2 on {worker_of(celery_airflow, final)}"
    )
