"""The pytest plugin (airflow_enos_provider.testing): its fixtures here, and in a user's own pytest run."""

from __future__ import annotations

import textwrap

import pytest

from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from airflow_enos_provider.testing.fixtures import connection_for
from tests import enos_env as env
from tests.airflow_cli import fresh_airflow_env, python_module


def test_the_connection_points_the_default_conn_at_the_emulator(enos_emulator, enos_connection, monkeypatch):
    from airflow_enos_provider.hooks.enos import EnOSHook

    assert (enos_connection.conn_id, enos_connection.url) == ("enos_default", enos_emulator.url)
    assert (enos_connection.user_id, enos_connection.org_id) == (env.USER_ID, env.ORG_ID)
    assert enos_connection.env_var == "AIRFLOW_CONN_ENOS_DEFAULT"
    started = enos_emulator.state.now()
    instance_id = EnOSHook().trigger_flow(env.IDLE_FLOW_ID).flow_inst_id
    assert enos_emulator.state.instance_status(instance_id) == S.INIT
    enos_emulator.state.advance(2)  # the manual clock: INIT lasts 1 s in the suite's tenant
    assert enos_emulator.state.now() == started + 2
    assert enos_emulator.state.instance_status(instance_id) == S.RUNNING
    assert enos_emulator.state.count("flows.trigger") == 1
    assert env.SECRET_KEY not in repr(enos_connection)


@pytest.mark.enos_connection("other_enos", user_id=env.OTHER_USER_ID, timeout=7)
def test_the_marker_names_another_conn_id_user_and_extras(enos_connection):
    from airflow_enos_provider.hooks.enos import EnOSHook

    assert enos_connection.env_var == "AIRFLOW_CONN_OTHER_ENOS"
    settings = EnOSHook(enos_conn_id="other_enos").settings
    assert settings.batch_identity(None, None) == (env.OTHER_USER_ID, env.ORG_ID)
    assert settings.timeout == 7


@pytest.mark.parametrize(
    ("enos_connection", "conn_id"),
    [("enos_a", "enos_a"), ({"conn_id": "enos_b", "org_id": "o-elsewhere"}, "enos_b")],
    indirect=["enos_connection"],
)
def test_an_indirect_parameter_names_the_conn_id(enos_connection, conn_id):
    from airflow_enos_provider.hooks.enos import EnOSHook

    assert enos_connection.conn_id == conn_id
    assert EnOSHook(enos_conn_id=conn_id).settings.gateway_url == enos_connection.url


def test_the_factory_makes_several_connections(enos_emulator, enos_connection_factory):
    from airflow_enos_provider.exceptions import EnOSAuthenticationError
    from airflow_enos_provider.hooks.enos import EnOSHook

    enos_connection_factory()
    enos_connection_factory("enos_wrong_secret", secret_key="sk-not-the-one")
    assert EnOSHook().get_flow_instance(env.RUNNING_ID)["status"] == S.RUNNING
    with pytest.raises(EnOSAuthenticationError):
        EnOSHook(enos_conn_id="enos_wrong_secret").get_flow_instance(env.RUNNING_ID)


@pytest.mark.enos_emulator(clock=None, cancel_final="success")
def test_the_emulator_marker_passes_its_keywords(enos_emulator):
    assert enos_emulator.state.cancel_final == "success"
    with pytest.raises(RuntimeError, match="clock='manual'"):
        enos_emulator.state.advance(1)  # wall time


def test_a_connection_needs_credentials_and_a_plain_conn_id(enos_emulator):
    with pytest.raises(ValueError, match="conn_id must be letters"):
        connection_for(enos_emulator, env.SEED, "enos-default")
    with pytest.raises(ValueError, match=r"access_key and secret_key.*enos_seed fixture"):
        connection_for(enos_emulator, {"users": env.SEED["users"]})
    given = connection_for(
        enos_emulator, {}, access_key="ak", secret_key="sk-given-5d1e8a", user_id="u", org_id="o"
    )
    assert (given.access_key, given.user_id, given.org_id) == ("ak", "u", "o")


PLUGIN = "airflow_enos_provider.testing.pytest_plugin"

# A user's tests: the plugin loaded as the docs say, with the demo tenant it ships.
USER_CONFTEST = f"pytest_plugins = [{PLUGIN!r}]\n"
USER_TESTS = """
import sys

import pytest


def test_loading_the_plugin_imported_neither_airflow_nor_the_emulator(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("airflow_enos_provider.testing.pytest_plugin")
    heavy = ("airflow.", "airflow_enos_provider.emulator", "airflow_enos_provider.hooks")
    loaded = [m for m in sys.modules if m == "airflow" or m.startswith(heavy)]
    assert loaded == []


def test_the_demo_tenant_by_default(enos_emulator, enos_connection):
    from airflow_enos_provider.hooks.enos import EnOSHook

    assert (enos_connection.user_id, enos_connection.org_id) == ("u-demo", "o-demo")
    assert EnOSHook().get_flow(2438)["flowName"] == "daily_load"
"""


def test_a_users_pytest_run_gets_the_fixtures_only_when_it_loads_the_plugin(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    run_env = fresh_airflow_env(tmp_path / "airflow-home")
    # Installing the provider loads nothing into a pytest run: without opting in, no fixtures.
    done = python_module("pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path, env=run_env)
    assert done.returncode == 1 and "fixture 'enos_emulator' not found" in done.stdout
    assert "enos" not in python_module(
        "pytest", "--trace-config", "--co", "-q", "-p", "no:cacheprovider", cwd=tmp_path, env=run_env
    ).stdout.replace("test_user.py", "")
    # Opting in with -p, then with pytest_plugins in the top-level conftest.
    done = python_module("pytest", "-q", "-p", "no:cacheprovider", "-p", PLUGIN, cwd=tmp_path, env=run_env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    (tmp_path / "conftest.py").write_text(USER_CONFTEST)
    done = python_module("pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path, env=run_env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
