"""A real scheduler, a real kill: Airflow's own components with the LocalExecutor, driven over REST.

Each test starts an EnOS flow that would run for an hour, does to its task or run what a user or an
operator would, and checks in the emulator what became of the EnOS instance.
"""

from __future__ import annotations

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.e2e import scenarios
from tests.e2e.airflow_stack import AirflowStack

# Each test is bounded; the first one's also covers starting the stack. The file takes about 1 min.
pytestmark = pytest.mark.timeout(300)


def test_marking_a_running_wait_failed_cancels_the_instance(local_airflow: AirflowStack, enos: EnOSEmulator):
    scenarios.kill_running_wait(local_airflow, enos, flow_id=5101)


def test_marking_a_deferred_wait_failed_cancels_the_instance(local_airflow: AirflowStack, enos: EnOSEmulator):
    scenarios.kill_deferred_wait(local_airflow, enos, flow_id=5102)


def test_restarting_the_triggerer_neither_cancels_nor_loses_the_wait(
    local_airflow: AirflowStack, enos: EnOSEmulator
):
    scenarios.restart_triggerer_mid_wait(local_airflow, enos, flow_id=5103)


def test_marking_the_run_failed_runs_the_teardown_cancel(local_airflow: AirflowStack, enos: EnOSEmulator):
    scenarios.fail_run_between_setup_and_teardown(local_airflow, enos, flow_id=5104)
