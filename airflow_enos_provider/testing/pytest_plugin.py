"""The pytest plugin: an EnOS emulator per test, and an Airflow connection pointing at it.

Opt-in: load it in your top-level ``conftest.py`` with
``pytest_plugins = ["airflow_enos_provider.testing.pytest_plugin"]`` (or pass
``-p airflow_enos_provider.testing.pytest_plugin``), then::

    def test_cancel(enos_emulator, enos_connection):
        enos_emulator.state.add_instance("2438-202601010000", 2438, status="RUNNING")
        ...  # run the DAG or the hook: `enos_default` is the emulator
        assert enos_emulator.state.instance_status("2438-202601010000") == 8  # CANCEL

Fixtures: ``enos_seed`` (the tenant; the package's demo seed unless a conftest overrides it),
``enos_emulator`` (a started :class:`~airflow_enos_provider.emulator.server.EnOSEmulator` on
loopback with a manual clock), ``enos_connection`` (an
:class:`~airflow_enos_provider.testing.fixtures.EnOSTestConnection` set in
``AIRFLOW_CONN_<CONN_ID>`` for the test) and ``enos_connection_factory`` (more connections).
Markers: ``enos_emulator(**kwargs)`` (emulator keywords, e.g. ``clock=None`` for wall time) and
``enos_connection(conn_id, **kwargs)``; ``enos_connection`` also takes an indirect parameter (a conn
id, or a dict of those keywords).

Loading it imports pytest and the standard library only; Airflow and the emulator load when a test
first asks for a fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_enos_provider.emulator.server import EnOSEmulator
    from airflow_enos_provider.testing.fixtures import EnOSTestConnection

__all__ = [
    "SeedSource",
    "enos_connection",
    "enos_connection_factory",
    "enos_emulator",
    "enos_seed",
    "pytest_configure",
]

SeedSource = dict[str, Any] | str | os.PathLike[str] | None


def pytest_configure(config: pytest.Config) -> None:
    """Declare the plugin's markers (so ``--strict-markers`` accepts them)."""
    config.addinivalue_line(
        "markers",
        "enos_emulator(**kwargs): EnOSEmulator keywords for the test's enos_emulator "
        "(clock=None for wall time, cancel_final=, token_ttl=, tls=)",
    )
    config.addinivalue_line(
        "markers",
        "enos_connection(conn_id='enos_default', **kwargs): the connection enos_connection sets up "
        "(user_id=, org_id=, access_key=, secret_key= and extras such as timeout=)",
    )


@pytest.fixture
def enos_seed() -> SeedSource:
    """Return the tenant ``enos_emulator`` starts with: the package's demo seed.

    Override it in a conftest or a test module to start from your own (a seed dict or the path of a
    JSON file; ``python -m airflow_enos_provider.emulator --help`` lists its fields), or seed more in
    the test through ``enos_emulator.state``.
    """
    from airflow_enos_provider.emulator.seed import demo_seed

    return demo_seed()


@pytest.fixture
def enos_emulator(request: pytest.FixtureRequest, enos_seed: SeedSource) -> Iterator[EnOSEmulator]:
    """Yield a started EnOS emulator on a free loopback port, with a manual clock; stop it afterwards.

    ``.url`` is its address; ``.state`` seeds flows and instances (``add_flow``, ``add_instance``,
    ``set_instance_status``), scripts how a flow's runs end (``add_flow(..., run_seconds=,
    end_status=, fail_task=)``, as the seed's keys do), moves the clock (``advance``), injects faults
    (``inject``) and reads what was received (``requests``, ``count``; over HTTP,
    ``GET /_emulator/requests``). The ``enos_emulator`` marker's keywords go to the
    emulator: ``@pytest.mark.enos_emulator(clock=None)`` runs it on wall time.
    """
    from airflow_enos_provider.testing.fixtures import running_emulator

    marker = request.node.get_closest_marker("enos_emulator")
    with running_emulator(enos_seed, **(marker.kwargs if marker is not None else {})) as emulator:
        yield emulator


@pytest.fixture
def enos_connection_factory(
    enos_emulator: EnOSEmulator, enos_seed: SeedSource, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., EnOSTestConnection]:
    """Return ``make(conn_id="enos_default", **kwargs)``: set a connection to the emulator, for the test.

    Each call sets ``AIRFLOW_CONN_<CONN_ID>`` until the test ends and returns the connection. It
    connects as the seed's first app and user unless ``access_key=``, ``secret_key=``, ``user_id=``
    or ``org_id=`` say otherwise; other keywords become extras (``timeout=5``).
    """
    from airflow_enos_provider.testing.fixtures import connection_for

    def make(conn_id: str = "enos_default", **kwargs: Any) -> EnOSTestConnection:
        connection = connection_for(enos_emulator, enos_seed, conn_id, **kwargs)
        monkeypatch.setenv(connection.env_var, connection.to_json())
        return connection

    return make


@pytest.fixture
def enos_connection(
    request: pytest.FixtureRequest, enos_connection_factory: Callable[..., EnOSTestConnection]
) -> EnOSTestConnection:
    """Point ``enos_default`` (or the conn id asked for) at ``enos_emulator`` for the test.

    Another conn id or user: ``@pytest.mark.enos_connection("my_enos", user_id="u-other")``, or
    ``@pytest.mark.parametrize("enos_connection", ["my_enos"], indirect=True)`` (a conn id, or a
    dict of the marker's keywords).
    """
    marker = request.node.get_closest_marker("enos_connection")
    args: tuple[Any, ...] = marker.args if marker is not None else ()
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    param = getattr(request, "param", None)
    if isinstance(param, str):
        args, kwargs = (param,), kwargs
    elif isinstance(param, dict):
        kwargs.update(param)
    return enos_connection_factory(*args, **kwargs)
