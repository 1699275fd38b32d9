"""Turn an Airflow ``enos`` connection into validated settings for the hook."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import string
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow_enos_provider._validation import require_int, require_text, seconds
from airflow_enos_provider.exceptions import EnOSValidationError

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_RETRY_MAX_WAIT = 60.0
CONN_TYPE = "enos"
#: The placeholders a ``console_url`` template may use.
CONSOLE_URL_FIELDS = ("flow_inst_id", "flow_id", "org_id")


@dataclass(frozen=True)
class EnOSConnectionSettings:
    """Everything the hook needs from an ``enos`` connection.

    :param conn_id: the connection id, for messages.
    :param gateway_url: the API gateway base URL, scheme included, no trailing slash.
    :param access_key: the application's access key (appKey).
    :param secret_key: the application's secret key (appSecret); never shown in repr.
    :param org_id: the default organization (OU) id for batch calls.
    :param user_id: the default EnOS user id for batch calls.
    :param verify: TLS verification: True, False, or a CA bundle path.
    :param timeout: seconds per request.
    :param retries: how many times a failed call is repeated when repeating is safe.
    :param retry_max_wait: the most seconds spent waiting between the attempts of one call.
    :param console_url: the URL template of a flow instance's page in the EnOS console, or None.
    """

    conn_id: str
    gateway_url: str
    access_key: str
    secret_key: str = field(repr=False)
    org_id: str | None = None
    user_id: str | None = None
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    retry_max_wait: float = DEFAULT_RETRY_MAX_WAIT
    console_url: str | None = None

    @classmethod
    def from_connection(cls, conn: Connection) -> EnOSConnectionSettings:
        """Read and validate a connection; the error names the field to fix.

        :param conn: the Airflow connection (its ``conn_type`` should be ``enos``).
        """
        conn_id = conn.conn_id or "(unnamed)"
        where = f"connection '{conn_id}'"
        extras = _extras(conn, where)
        if not conn.host:
            raise EnOSValidationError(
                f"{where}: host (the EnOS API gateway URL, e.g. https://apim-ppe1.envisioniot.com) is empty"
            )
        if not conn.login:
            raise EnOSValidationError(f"{where}: login (the application's access key) is empty")
        if not conn.password:
            raise EnOSValidationError(f"{where}: password (the application's secret key) is empty")
        return cls(
            conn_id=conn_id,
            gateway_url=_gateway_url(conn.host, conn.port, where, conn.schema),
            access_key=require_text(conn.login, f"{where}: login (access key)"),
            secret_key=conn.password,
            org_id=_optional_text(extras, "org_id", where),
            user_id=_optional_text(extras, "user_id", where),
            verify=_verify(extras.get("verify"), where),
            timeout=_seconds(extras.get("timeout"), "timeout", DEFAULT_TIMEOUT, where),
            retries=_retries(extras.get("retries"), where),
            retry_max_wait=_seconds(
                extras.get("retry_max_wait"), "retry_max_wait", DEFAULT_RETRY_MAX_WAIT, where
            ),
            console_url=console_url_template(extras.get("console_url"), f"{where}: extra 'console_url'"),
        )

    def batch_identity(self, user_id: str | None, org_id: str | None) -> tuple[str, str]:
        """Return the ``(userId, orgId)`` of a batch call: the given values, else the connection's.

        :param user_id: the caller's user id, or None for the connection's ``user_id`` extra.
        :param org_id: the caller's org id, or None for the connection's ``org_id`` extra.
        :raises EnOSValidationError: when either is missing or malformed.
        """
        resolved = []
        for name, given, default in (("user_id", user_id, self.user_id), ("org_id", org_id, self.org_id)):
            value = given if given is not None else default
            if value is None or value == "":
                raise EnOSValidationError(
                    f"{name} is required for EnOS batch calls: pass {name}= or set the '{name}' extra "
                    f"on connection '{self.conn_id}'"
                )
            resolved.append(require_text(value, name))
        return resolved[0], resolved[1]


def console_url_template(value: object, field: str) -> str | None:
    """Check a ``console_url`` template: an http(s) URL whose only placeholders are the known ones.

    :param value: the template, e.g. ``https://console.example/batch/instances/{flow_inst_id}``; None
        for no link.
    :param field: names the value in the error.
    """
    if value is None:
        return None
    known = ", ".join(f"{{{name}}}" for name in CONSOLE_URL_FIELDS)
    if not isinstance(value, str) or not value.strip().lower().startswith(("http://", "https://")):
        raise EnOSValidationError(f"{field} must be an http(s) URL template using {known}, got {value!r}")
    try:
        fields = [
            (name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value) if name is not None
        ]
    except ValueError as err:
        raise EnOSValidationError(
            f"{field}: {err} in {value!r}; write a literal brace as {{{{ or }}}}"
        ) from None
    for name, spec, conversion in fields:
        if name not in CONSOLE_URL_FIELDS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise EnOSValidationError(f"{field}: unknown placeholder {shown} in {value!r}; use {known}")
    return value.strip()


def console_url(template: str, flow_inst_id: str, flow_id: object, org_id: object) -> str:
    """Fill a checked ``console_url`` template, each value URL-quoted.

    :param template: a template :func:`console_url_template` accepted.
    :param flow_inst_id: the flow instance id.
    :param flow_id: its workflow id.
    :param org_id: the OU id.
    """
    values = {"flow_inst_id": flow_inst_id, "flow_id": flow_id, "org_id": org_id}
    if missing := [f"{{{n}}}" for n, v in values.items() if f"{{{n}}}" in template and v in (None, "")]:
        raise EnOSValidationError(f"console_url needs {', '.join(missing)}, which is not known here")
    return template.format(**{name: quote(str(value), safe="") for name, value in values.items()})


def _extras(conn: Connection, where: str) -> dict[str, Any]:
    try:
        raw = json.loads(conn.extra) if conn.extra else {}
    except ValueError as err:
        raise EnOSValidationError(f"{where}: extra must be a JSON object, it does not parse: {err}") from None
    if not isinstance(raw, dict):
        raise EnOSValidationError(f"{where}: extra must be a JSON object, got {type(raw).__name__}")
    extras: dict[str, Any] = {}
    prefix = f"extra__{CONN_TYPE}__"
    for key, value in raw.items():
        # Forms before Airflow 3 stored fields as extra__enos__<name>; the plain name wins when both exist.
        if key.startswith(prefix):
            extras.setdefault(key[len(prefix) :], value)
        else:
            extras[key] = value
    return {k: v for k, v in extras.items() if v is not None and v != ""}


def _gateway_url(host: str, port: int | None, where: str, schema: str | None = None) -> str:
    # The schema field (hidden in the form) is honoured as the scheme of a host given without one,
    # e.g. "http" for the emulator; anything else in it is refused rather than silently ignored.
    scheme = (schema or "").strip().lower()
    if scheme not in ("", "http", "https"):
        raise EnOSValidationError(
            f"{where}: schema must be empty, 'http' or 'https' (the gateway's scheme), got {schema!r}"
        )
    text = host.strip().rstrip("/")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise EnOSValidationError(
            f"{where}: host must be a URL without spaces or control characters, got {host[:200]!r}"
        )
    if "://" not in text:
        text = f"{scheme or 'https'}://{text}"
    elif scheme and urlsplit(text).scheme.lower() != scheme:
        raise EnOSValidationError(
            f"{where}: schema {schema!r} contradicts the scheme of host {host!r}; leave one of them empty"
        )
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnOSValidationError(
            f"{where}: host must be the gateway URL such as https://apim-ppe1.envisioniot.com, got {host!r}"
        )
    if parts.query or parts.fragment:
        raise EnOSValidationError(f"{where}: host must not contain a query or fragment, got {host!r}")
    if port and parts.port is not None and port != parts.port:
        raise EnOSValidationError(
            f"{where}: port {port} differs from the port in the gateway URL {host!r}; leave one of them empty"
        )
    if port and parts.port is None:
        text = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return text


def _optional_text(extras: dict[str, Any], name: str, where: str) -> str | None:
    value = extras.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return require_text(value, f"{where}: extra '{name}'")


def _verify(value: Any, where: str) -> bool | str:
    if value is None or isinstance(value, bool):
        return True if value is None else value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        return value.strip()  # a CA bundle path
    raise EnOSValidationError(
        f"{where}: extra 'verify' must be true, false or a CA bundle path, got {value!r}"
    )


def _seconds(value: Any, name: str, default: float, where: str) -> float:
    if value is None:
        return default
    if isinstance(value, str):  # an extra may hold the number as text
        with contextlib.suppress(ValueError):
            value = float(value)
    checked: float = seconds(value, f"{where}: extra '{name}'")
    return checked


def _retries(value: Any, where: str) -> int:
    if value is None:
        return DEFAULT_RETRIES
    if isinstance(value, str):  # an extra may hold the number as text
        with contextlib.suppress(ValueError):
            value = int(value)
    return require_int(value, f"{where}: extra 'retries'", 0, 20)


# Settings of the async path, per event loop and connection id, kept SETTINGS_TTL seconds: a thousand
# triggers that start together read the connection once, not a thousand times.
SETTINGS_TTL = 60.0
_SHARED: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Future[EnOSConnectionSettings]]]
] = weakref.WeakKeyDictionary()


async def shared_settings(
    conn_id: str, read: Callable[[], Awaitable[EnOSConnectionSettings]]
) -> EnOSConnectionSettings:
    """Return a connection's settings, read once for every hook in the running event loop.

    :param conn_id: the connection id.
    :param read: reads and checks the connection; called at most once per ``SETTINGS_TTL`` seconds.
    """
    cache = _SHARED.setdefault(asyncio.get_running_loop(), {})
    entry = cache.get(conn_id)
    if entry is None or entry[0] <= time.monotonic():
        entry = (time.monotonic() + SETTINGS_TTL, asyncio.ensure_future(read()))
        cache[conn_id] = entry
    try:
        return await asyncio.shield(entry[1])
    except BaseException:
        if entry[1].done() and cache.get(conn_id) is entry:
            del cache[conn_id]  # a failed read is not kept
        raise


_WARNED: set[tuple[str, str]] = set()


def warn_about_transport(settings: EnOSConnectionSettings, log: Any) -> None:
    """Warn once per process and gateway about a connection that weakens transport security.

    :param settings: the connection's settings.
    :param log: the logger to warn on.
    """
    host = urlsplit(settings.gateway_url).hostname or ""
    warnings = []
    if settings.verify is False:
        warnings.append(
            ("verify", "TLS certificate verification is OFF for %s (connection %s 'verify' extra)")
        )
    if settings.gateway_url.startswith("http://") and not _is_loopback(host):
        warnings.append(
            (
                "http",
                "%s is plain HTTP: tokens and credential-derived signatures travel in clear (connection %s)",
            )
        )
    for kind, message in warnings:
        if (kind, settings.gateway_url) not in _WARNED:
            _WARNED.add((kind, settings.gateway_url))
            log.warning(message, settings.gateway_url, settings.conn_id)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
