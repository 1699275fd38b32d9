"""What the pytest plugin's fixtures do, importable without pytest: run an emulator, make a connection.

Imported only when a test asks for ``enos_emulator`` or ``enos_connection`` (it loads the emulator).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from airflow_enos_provider.emulator.seed import load_seed_file
from airflow_enos_provider.emulator.server import EnOSEmulator, connection_json

__all__ = ["DEFAULT_CONN_ID", "EnOSTestConnection", "connection_for", "running_emulator"]

DEFAULT_CONN_ID = "enos_default"


@contextmanager
def running_emulator(
    seed: Mapping[str, Any] | str | os.PathLike[str] | None, **kwargs: Any
) -> Iterator[EnOSEmulator]:
    """Run a seeded emulator on a free loopback port, with a manual clock unless told otherwise.

    The provider's token cache is emptied before and after: the next emulator may get the same port
    and access key, and it never issued the tokens this one did.

    :param seed: the tenant (a seed dict or the path of a JSON file), or None for an empty one.
    :param kwargs: more :class:`~airflow_enos_provider.emulator.server.EnOSEmulator` keywords
        (``clock=None`` for wall time, ``tls``...).
    """
    from airflow_enos_provider._protocol.tokens import TOKENS

    kwargs.setdefault("clock", "manual")
    TOKENS.clear()
    try:
        with EnOSEmulator(dict(seed) if isinstance(seed, Mapping) else seed, **kwargs) as emulator:
            yield emulator
    finally:
        TOKENS.clear()


@dataclass(frozen=True)
class EnOSTestConnection:
    """An ``enos`` connection to the emulator that the plugin put in the environment for one test.

    :param conn_id: the Airflow connection id (``enos_default`` unless asked otherwise).
    :param url: the emulator's base URL (the connection's host).
    :param access_key: the application's access key (the connection's login).
    :param secret_key: the application's secret key (the connection's password).
    :param user_id: the ``user_id`` extra.
    :param org_id: the ``org_id`` extra.
    :param extra: the other extras, e.g. ``{"timeout": 5}``.
    """

    conn_id: str
    url: str
    access_key: str
    secret_key: str = field(repr=False)
    user_id: str
    org_id: str
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def env_var(self) -> str:
        """The variable Airflow reads the connection from, e.g. ``AIRFLOW_CONN_ENOS_DEFAULT``."""
        return "AIRFLOW_CONN_" + self.conn_id.upper()

    def to_json(self) -> str:
        """Return the connection as the JSON Airflow reads from :attr:`env_var`."""
        return connection_json(
            self.url,
            access_key=self.access_key,
            secret_key=self.secret_key,
            org_id=self.org_id,
            user_id=self.user_id,
            **self.extra,
        )


def connection_for(
    emulator: EnOSEmulator,
    seed: Mapping[str, Any] | str | os.PathLike[str] | None,
    conn_id: str = DEFAULT_CONN_ID,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    user_id: str | None = None,
    org_id: str | None = None,
    **extra: object,
) -> EnOSTestConnection:
    """Return a connection to ``emulator`` as the seed's first app and first user, unless told.

    :param emulator: the running emulator.
    :param seed: the seed it was started with (where the credentials come from).
    :param conn_id: the Airflow connection id: letters, digits and underscores.
    :param access_key: another app's access key (with ``secret_key``).
    :param secret_key: another secret key, e.g. a wrong one.
    :param user_id: another user (with ``org_id`` when it is in another organisation).
    :param org_id: another organisation id.
    :param extra: more connection extras (``timeout``, ``retries``, ``verify`` ...).
    :raises ValueError: on a conn id an environment variable cannot carry, or when the seed has no
        app or user to take the credentials from and none was given.
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", conn_id):
        raise ValueError(f"conn_id must be letters, digits and underscores (AIRFLOW_CONN_<ID>): {conn_id!r}")
    document = load_seed_file(dict(seed) if isinstance(seed, Mapping) else seed) if seed is not None else {}
    app = _first(document, "apps", ("access_key", "secret_key"), access_key, secret_key)
    user = _first(document, "users", ("user_id", "org_id"), user_id, org_id)
    return EnOSTestConnection(
        conn_id, emulator.url, app["access_key"], app["secret_key"], user["user_id"], user["org_id"], extra
    )


def _first(
    document: Mapping[str, Any], key: str, names: tuple[str, str], *given: str | None
) -> dict[str, str]:
    # A value given wins; the rest comes from the seed's first entry of that kind.
    entries = document.get(key) or []
    first: Mapping[str, Any] = entries[0] if entries else {}
    chosen = {
        name: first.get(name) if value is None else value for name, value in zip(names, given, strict=True)
    }
    missing = [name for name, value in chosen.items() if not isinstance(value, str) or not value]
    if missing:
        raise ValueError(
            f"the enos_connection needs {' and '.join(missing)}: the emulator's seed has no {key[:-1]} "
            f"with them; seed one (the enos_seed fixture) or pass {', '.join(f'{n}=' for n in missing)}"
        )
    return {name: str(value) for name, value in chosen.items()}
