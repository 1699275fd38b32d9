"""Make signed calls to the EnOS API gateway and the Batch Processing Service v2.1."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import os
import random
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter

from airflow_enos_provider import __version__
from airflow_enos_provider._compat import BaseHook, amask_secret, mask_secret
from airflow_enos_provider.connection import CONN_TYPE, EnOSConnectionSettings
from airflow_enos_provider.exceptions import (
    EnOSAPIError,
    EnOSAuthenticationError,
    EnOSConnectionError,
    EnOSError,
    EnOSValidationError,
    retry_reason,
)
from airflow_enos_provider.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_enos_provider.protocol.codes import EnOSCode
from airflow_enos_provider.protocol.envelope import parse_reply
from airflow_enos_provider.protocol.signing import request_signature, token_encryption
from airflow_enos_provider.status import EnOSFlowInstanceStatus, status_list
from airflow_enos_provider.validation import (
    require_flow_inst_id,
    require_flow_inst_ids,
    require_int,
    require_text,
)

if TYPE_CHECKING:
    import aiohttp

TOKEN_PATH = "/apim-token-service/v2.0/token/get"
BATCH_PATH = "/batch-processing-service/v2.1"
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
USER_AGENT = f"airflow-enos-provider/{__version__}"
DEFAULT_MAX_CONCURRENCY = 16
CLOCK_SKEW_WARNING = 30.0  # seconds of difference with the gateway worth naming in an error
# Refusals after which reading the instance cannot change the verdict of a cancel.
_NOT_WORTH_A_READ = frozenset({62101, 62105})
_LIST_FILTERS = {
    "type": "type",
    "owner": "owner",
    "from_trigger_time": "fromTriggerTime",
    "to_trigger_time": "toTriggerTime",
    "fromTriggerTime": "fromTriggerTime",
    "toTriggerTime": "toTriggerTime",
    "sorters": "sorters",
}


class _TokenCache:
    """Access tokens shared by every hook in the process, per (gateway, access key)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self.clock = time.monotonic  # replaceable, so tests can step past a token's refresh time
        self._last_timestamp = 0
        self._timestamp_lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def valid(self, key: tuple[str, str], stale: str | None) -> str | None:
        cached = self.tokens.get(key)
        if cached and cached[0] != stale and self.clock() < cached[1]:
            return cached[0]
        return None

    def store(self, key: tuple[str, str], data: Any) -> str:
        token = data.get("accessToken") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise EnOSAuthenticationError(
                "the token service returned no accessToken", operation="get_access_token"
            )
        expire = float(data.get("expire") or 0)
        self.tokens[key] = (token, self.clock() + expire - refresh_margin(expire))
        return token

    def next_timestamp(self) -> int:
        # The token service refuses a repeated encryption (1001), so two requests in one millisecond
        # must not share a timestamp.
        with self._timestamp_lock:
            self._last_timestamp = max(int(time.time() * 1000), self._last_timestamp + 1)
            return self._last_timestamp

    def async_lock(self) -> asyncio.Lock:
        # One fetch at a time per event loop: a thousand waiting triggers must not ask for a thousand tokens.
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    def clear(self) -> None:
        with self.lock:
            self.tokens.clear()


_TOKENS = _TokenCache()
# One async session per event loop and TLS setting, shared by every trigger in a triggerer. aiohttp,
# not httpx: a thousand waiting triggers poll at about an eighth of httpx's CPU per request.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[bool | str, aiohttp.ClientSession]
] = weakref.WeakKeyDictionary()


# Connection settings of the async path, per event loop and connection id, kept SETTINGS_TTL seconds: a
# thousand triggers that start together read the connection once, not a thousand times.
SETTINGS_TTL = 60.0
_ASYNC_SETTINGS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Future[EnOSConnectionSettings]]]
] = weakref.WeakKeyDictionary()


def _async_client(verify: bool | str) -> aiohttp.ClientSession:
    import aiohttp  # here, not at the top: about 100 ms that a worker's sync task never needs

    clients = _ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})
    if verify not in clients:
        tls: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        clients[verify] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, ssl=tls),
            headers={"User-Agent": USER_AGENT},
            skip_auto_headers=("Content-Type",),
        )
    return clients[verify]


_WARNED: set[tuple[str, str]] = set()


def _warn_about_transport(settings: EnOSConnectionSettings, log: Any) -> None:
    """Warn once per process and gateway about a connection that weakens transport security."""
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


def refresh_margin(expire_seconds: float) -> float:
    """Return how many seconds before expiry a token is replaced: 10% of its life, at most 5 minutes.

    :param expire_seconds: the token's lifetime as the token service gave it.
    """
    return min(300.0, expire_seconds * 0.1)


@dataclass(frozen=True)
class _Op:
    """One Batch Processing call, described once and run by the sync or the async transport."""

    name: str
    method: str
    resource: str
    action: str
    query: tuple[tuple[str, str], ...] = ()
    body: dict[str, Any] | None = None
    flow_inst_id: str | None = None
    # Repeating a call that may have reached EnOS is safe unless it starts something new.
    idempotent: bool = True


def _cancel_op(flow_inst_id: str) -> _Op:
    flow_inst_id = require_flow_inst_id(flow_inst_id)
    return _Op(
        "cancel_flow_instance", "POST", "/flowInstances", "cancel",
        body={"flowInstId": flow_inst_id}, flow_inst_id=flow_inst_id,
    )  # fmt: skip


def _get_op(flow_inst_id: str) -> _Op:
    flow_inst_id = require_flow_inst_id(flow_inst_id)
    return _Op(
        "get_flow_instance", "GET", "/flowInstances", "get",
        query=(("flowInstId", flow_inst_id),), flow_inst_id=flow_inst_id,
    )  # fmt: skip


def _stopped(flow_inst_id: str, outcome: str, status: EnOSFlowInstanceStatus | None) -> dict[str, Any]:
    return {"flow_inst_id": flow_inst_id, "outcome": outcome, "status": status.name if status else None}


class EnOSHook(BaseHook):
    """Call the EnOS API gateway with the token-and-signature scheme, over one keep-alive session.

    Tokens are cached per process for each (gateway, access key) and replaced shortly before they
    expire, and once more when a call is refused because the token expired. Every method has an
    ``a``-prefixed async twin (on aiohttp) where triggers need one.

    :param enos_conn_id: the ``enos`` connection to use.
    :param timeout: seconds per request, overriding the connection's ``timeout`` extra (``on_kill``
        uses a short one, because Airflow kills the process 5 s after asking it to stop).
    :param retries: overrides the connection's ``retries`` extra (default 3).
    :param retry_max_wait: overrides the connection's ``retry_max_wait`` extra (default 60 s).
    :param retry_base_delay: the first backoff in seconds; later ones double, with full jitter.
    """

    conn_name_attr = "enos_conn_id"
    default_conn_name = "enos_default"
    conn_type = CONN_TYPE
    hook_name = "EnOS"

    def __init__(
        self,
        enos_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        retry_max_wait: float | None = None,
        retry_base_delay: float = 0.5,
    ) -> None:
        super().__init__()
        self.enos_conn_id = enos_conn_id
        self.timeout_override = timeout
        self.retries_override = retries
        self.retry_max_wait_override = retry_max_wait
        self.retry_base_delay = retry_base_delay
        self.retry_count = RetryCounter()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the custom connection form fields (Airflow < 3.2; newer reads the provider info)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget  # type: ignore[import-not-found]
        from wtforms import IntegerField, StringField  # type: ignore[import-untyped]

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            field_class = IntegerField if "integer" in spec["schema"]["type"] else StringField
            widgets[name] = field_class(
                spec["label"], widget=BS3TextFieldWidget(), description=spec["description"]
            )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the relabelled, hidden and placeholder fields (Airflow < 3.2)."""
        behaviour = UI_FIELD_BEHAVIOUR
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    @cached_property
    def settings(self) -> EnOSConnectionSettings:
        """Return the connection's validated settings (read once per hook)."""
        settings = EnOSConnectionSettings.from_connection(self.get_connection(self.enos_conn_id))
        mask_secret(settings.secret_key)
        _warn_about_transport(settings, self.log)
        return settings

    async def asettings(self) -> EnOSConnectionSettings:
        """Return the connection's validated settings, reading the connection without blocking.

        Hooks in one event loop share one read per connection id for ``SETTINGS_TTL`` seconds.
        """
        if "settings" not in self.__dict__:
            cache = _ASYNC_SETTINGS.setdefault(asyncio.get_running_loop(), {})
            entry = cache.get(self.enos_conn_id)
            if entry is None or entry[0] <= time.monotonic():
                entry = (time.monotonic() + SETTINGS_TTL, asyncio.ensure_future(self._aread_settings()))
                cache[self.enos_conn_id] = entry
            try:
                self.__dict__["settings"] = await asyncio.shield(entry[1])
            except BaseException:
                if entry[1].done() and cache.get(self.enos_conn_id) is entry:
                    del cache[self.enos_conn_id]  # a failed read is not kept
                raise
        return self.settings

    async def _aread_settings(self) -> EnOSConnectionSettings:
        if hasattr(self, "aget_connection"):
            conn = await self.aget_connection(self.enos_conn_id)
        else:  # Airflow < 3.1: read it in a thread rather than block the loop
            conn = await asyncio.to_thread(self.get_connection, self.enos_conn_id)
        settings = EnOSConnectionSettings.from_connection(conn)
        await amask_secret(settings.secret_key)
        _warn_about_transport(settings, self.log)
        return settings

    def with_limits(self, *, timeout: float | None = None, retries: int | None = None) -> EnOSHook:
        """Return a hook on the same connection with other limits, reusing the settings already read.

        :param timeout: seconds per request (None: the connection's ``timeout`` extra).
        :param retries: how many times a call is repeated (None: the connection's ``retries`` extra).
        """
        hook = type(self)(
            self.enos_conn_id,
            timeout=timeout,
            retries=retries,
            retry_max_wait=self.retry_max_wait_override,
            retry_base_delay=self.retry_base_delay,
        )
        if "settings" in self.__dict__:
            # Immutable, so sharing is safe; the new hook gets its own session and retry counter.
            hook.__dict__["settings"] = self.settings
        return hook

    @cached_property
    def session(self) -> requests.Session:
        """Return this hook's keep-alive HTTP session, pooled for bulk cancels."""
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        # With trust_env on, requests re-reads every proxy variable and ~/.netrc on each request (a
        # quarter of a cancel's CPU): read the proxies once here; auth is in signed headers, never netrc.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.settings.gateway_url))
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=DEFAULT_MAX_CONCURRENCY)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    @cached_property
    def _requests_verify(self) -> bool | str:
        # trust_env is off (see session): honour REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE as requests would.
        verify = self.settings.verify
        if verify is True:
            return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        return verify

    def get_conn(self) -> requests.Session:
        """Return this hook's HTTP session."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session's pooled connections."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    # ----------------------------------------------------------------- Batch Processing operations

    def cancel_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> None:
        """Ask EnOS to cancel a flow instance.

        :param flow_inst_id: the instance id, e.g. ``2438-201908081020``.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :raises EnOSAPIError: when EnOS refuses (the error names the code and what to do).
        """
        self._run(_cancel_op(flow_inst_id), user_id, org_id)

    async def acancel_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> None:
        """Ask EnOS to cancel a flow instance (async; see :meth:`cancel_flow_instance`)."""
        await self._arun(_cancel_op(flow_inst_id), user_id, org_id)

    def get_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a flow instance as EnOS describes it (``status`` is the integer code).

        :param flow_inst_id: the instance id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        op = _get_op(flow_inst_id)
        return _expect_dict(self._run(op, user_id, org_id), op)

    async def aget_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a flow instance (async; see :meth:`get_flow_instance`)."""
        op = _get_op(flow_inst_id)
        return _expect_dict(await self._arun(op, user_id, org_id), op)

    def ensure_flow_instance_stopped(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Cancel a flow instance, or confirm that it already finished; safe to repeat.

        Sends the cancel first (no read on the success path). When EnOS refuses, reads the instance:
        if it is final the outcome is ``already_final`` with that status; otherwise the refusal stands.
        So an instance that finishes between any read and the cancel is ``already_final``, not an error.

        :param flow_inst_id: the instance id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: ``{"flow_inst_id", "outcome": "cancelled" | "already_final", "status"}``, where
            ``status`` is the status name read after a refusal, or None when EnOS accepted the cancel.
        :raises EnOSAPIError: the cancel's refusal, when the instance is still active or unreadable.
        """
        try:
            self.cancel_flow_instance(flow_inst_id, user_id=user_id, org_id=org_id)
        except EnOSAPIError as refusal:
            if isinstance(refusal, EnOSAuthenticationError) or refusal.code in _NOT_WORTH_A_READ:
                raise
            instance: dict[str, Any] | EnOSError
            try:
                instance = self.get_flow_instance(flow_inst_id, user_id=user_id, org_id=org_id)
            except EnOSError as read_error:
                instance = read_error
            return self._outcome_after_refusal(flow_inst_id, refusal, instance)
        return _stopped(flow_inst_id, "cancelled", None)

    async def aensure_flow_instance_stopped(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Cancel a flow instance or confirm it finished (async; see :meth:`ensure_flow_instance_stopped`)."""
        try:
            await self.acancel_flow_instance(flow_inst_id, user_id=user_id, org_id=org_id)
        except EnOSAPIError as refusal:
            if isinstance(refusal, EnOSAuthenticationError) or refusal.code in _NOT_WORTH_A_READ:
                raise
            instance: dict[str, Any] | EnOSError
            try:
                instance = await self.aget_flow_instance(flow_inst_id, user_id=user_id, org_id=org_id)
            except EnOSError as read_error:
                instance = read_error
            return self._outcome_after_refusal(flow_inst_id, refusal, instance)
        return _stopped(flow_inst_id, "cancelled", None)

    def _outcome_after_refusal(
        self, flow_inst_id: str, refusal: EnOSAPIError, instance: dict[str, Any] | EnOSError
    ) -> dict[str, Any]:
        if isinstance(instance, EnOSError):
            self.log.warning(
                "EnOS refused to cancel flow instance %s (code %s) and reading it failed too: %s",
                flow_inst_id, refusal.code, instance,
            )  # fmt: skip
            raise refusal
        try:
            status = EnOSFlowInstanceStatus.parse(instance.get("status"), "status")
        except EnOSValidationError:
            raise refusal from None
        if not status.is_final:
            raise refusal
        return _stopped(flow_inst_id, "already_final", status)

    def cancel_flow_instances(
        self,
        flow_inst_ids: Iterable[str],
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> dict[str, dict[str, Any] | EnOSError]:
        """Stop many flow instances concurrently over this hook's connection pool.

        Each id gets :meth:`ensure_flow_instance_stopped`; one failing id does not stop the others.

        :param flow_inst_ids: the instance ids (duplicates are cancelled once).
        :param max_concurrency: the most requests in flight at once (1 to 256).
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: per id, in the given order, the outcome dict or the error that stopped it.
        """
        ids = require_flow_inst_ids(flow_inst_ids, "flow_inst_ids")
        require_int(max_concurrency, "max_concurrency", 1, 256)
        self.settings.batch_identity(user_id, org_id)
        if max_concurrency > DEFAULT_MAX_CONCURRENCY:
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_concurrency)
            self.session.mount("https://", adapter)
            self.session.mount("http://", adapter)
        self._access_token()  # once, before the threads fan out

        def stop(flow_inst_id: str) -> dict[str, Any] | EnOSError:
            try:
                return self.ensure_flow_instance_stopped(flow_inst_id, user_id=user_id, org_id=org_id)
            except EnOSError as err:
                return err

        with ThreadPoolExecutor(
            max_workers=min(max_concurrency, len(ids)), thread_name_prefix="enos-cancel"
        ) as pool:
            return dict(zip(ids, pool.map(stop, ids), strict=True))

    def find_flow_instances(
        self,
        *,
        flow_id: int | str | None = None,
        expression: str | None = None,
        only_active: bool = True,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return the instances of a workflow (and/or matching an expression), all pages.

        EnOS searches by a fuzzy ``expression`` only, so instances of ``flow_id`` are found with the
        expression ``"<flow_id>-"`` and then kept only when their ``flowId`` is exactly ``flow_id``.

        :param flow_id: the workflow whose instances to find.
        :param expression: fuzzy match on instance id or flow name.
        :param only_active: keep only instances that may still run (see ``active_statuses()``).
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        if flow_id is None and expression is None:
            raise EnOSValidationError("find_flow_instances needs flow_id or expression (or both)")
        wanted = None if flow_id is None else to_flow_id(flow_id)
        found = self.list_flow_instances(
            status=sorted(EnOSFlowInstanceStatus.active_statuses()) if only_active else None,
            expression=expression if expression is not None else f"{wanted}-",
            user_id=user_id,
            org_id=org_id,
        )
        return [i for i in found if wanted is None or i.get("flowId") == wanted]

    def list_flow_instances(
        self,
        *,
        status: int
        | str
        | EnOSFlowInstanceStatus
        | Iterable[int | str | EnOSFlowInstanceStatus]
        | None = None,
        expression: str | None = None,
        page_size: int = 100,
        user_id: str | None = None,
        org_id: str | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Return every flow instance that matches, following all pages.

        :param status: one status or several, as codes, names or
            :class:`~airflow_enos_provider.status.EnOSFlowInstanceStatus`.
        :param expression: fuzzy match on instance id or flow name.
        :param page_size: instances per page request (1 to 1000).
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :param filters: more search fields: ``type`` (0 manual, 1 periodic, 2 temporary), ``owner``,
            ``from_trigger_time`` and ``to_trigger_time`` (ms or datetime), ``sorters``.
        """
        require_int(page_size, "page_size", 1, 1000)
        search: dict[str, Any] = {}
        if status is not None:
            search["status"] = ",".join(str(int(s)) for s in _statuses(status))
        if expression is not None:
            search["expression"] = require_text(expression, "expression")
        for name, value in filters.items():
            if name not in _LIST_FILTERS:
                allowed = ", ".join(sorted(_LIST_FILTERS))
                raise EnOSValidationError(
                    f"list_flow_instances got an unknown filter {name!r}; expected {allowed}"
                )
            key = _LIST_FILTERS[name]
            search[key] = to_epoch_ms(value, name) if key.endswith("TriggerTime") else value
        sorters = search.pop("sorters", None)
        found: list[dict[str, Any]] = []
        page_no = 1
        while True:
            pagination: dict[str, Any] = {"pageNo": page_no, "pageSize": page_size}
            if sorters is not None:
                pagination["sorters"] = sorters
            op = _Op(
                "list_flow_instances",
                "POST",
                "/flowInstances",
                "search",
                body={**search, "pagination": pagination},
            )
            data = _expect_dict(self._run(op, user_id, org_id), op)
            page = data.get("flowInsts") or []
            found.extend(page)
            if not page or len(page) < page_size or len(found) >= int(data.get("count") or 0):
                return found
            page_no += 1

    def trigger_flow(
        self,
        flow_id: int | str,
        *,
        trigger_time: int | datetime | None = None,
        parameters: Mapping[str, Any] | str | None = None,
        start_task_id: str | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> str:
        """Start a workflow and return the new flow-instance id.

        :param flow_id: the workflow id (an integer, or its digits as a string).
        :param trigger_time: the logical trigger time, ms since the epoch or a datetime; default now.
        :param parameters: run with these parameters (EnOS "Update And Trigger Flow").
        :param start_task_id: start from this task of the workflow (EnOS "Trigger Flow From Task").
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        body: dict[str, Any] = {
            "flowId": to_flow_id(flow_id),
            "triggerTime": int(time.time() * 1000) if trigger_time is None else to_epoch_ms(trigger_time),
        }
        action = "trigger"
        if parameters is not None and start_task_id is not None:
            raise EnOSValidationError(
                "parameters and start_task_id cannot be combined: EnOS triggers with new parameters "
                "or from a task, not both"
            )
        if parameters is not None:
            if not isinstance(parameters, (str, Mapping)):
                raise EnOSValidationError(f"parameters must be a dict or a JSON string, got {parameters!r}")
            action, body["parameters"] = "updateAndTrigger", parameters
        if start_task_id is not None:
            action, body["taskId"] = "triggerFromTask", require_text(start_task_id, "start_task_id")
        op = _Op("trigger_flow", "POST", "/flows", action, body=body, idempotent=False)

        def started_without_reply(err: EnOSError) -> dict[str, Any] | None:
            # The trigger may have started the flow although no reply came: find that instance
            # instead of starting a second one. Only when EnOS shows none is repeating safe.
            started = self._instance_triggered_at(body["flowId"], body["triggerTime"], user_id, org_id)
            if started is None:
                return None
            self.log.warning(
                "EnOS trigger of flow %s got no reply (%s) but started flow instance %s; using it",
                body["flowId"], err, started,
            )  # fmt: skip
            return {"flowInstanceId": started}

        data = self._run(op, user_id, org_id, before_repeat=started_without_reply)
        instance_id = data.get("flowInstanceId") if isinstance(data, dict) else None
        if not isinstance(instance_id, str) or not instance_id:
            raise EnOSAPIError(f"the reply has no flowInstanceId: {data!r:.200}", operation="trigger_flow")
        return instance_id

    def _instance_triggered_at(
        self, flow_id: int, trigger_ms: int, user_id: str | None, org_id: str | None
    ) -> str | None:
        found = self.list_flow_instances(
            expression=f"{flow_id}-",
            from_trigger_time=max(0, trigger_ms - 1000),
            to_trigger_time=trigger_ms + 1000,
            user_id=user_id,
            org_id=org_id,
        )
        ids = [str(i["instanceId"]) for i in found if i.get("flowId") == flow_id]
        return ids[0] if len(ids) == 1 else None

    def get_flow(
        self, flow_id: int | str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a workflow's definition, including its ``locked`` and ``isUserLocked`` flags.

        :param flow_id: the workflow id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        op = _Op("get_flow", "GET", "/flows", "get", query=(("flowId", str(to_flow_id(flow_id))),))
        return _expect_dict(self._run(op, user_id, org_id), op)

    def get_server_time(self, *, user_id: str | None = None, org_id: str | None = None) -> int:
        """Return EnOS's current time in milliseconds since the epoch (UTC).

        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        data = self._run(_Op("get_server_time", "GET", "/time", "getCurrentTime"), user_id, org_id)
        try:
            return int(data)
        except (TypeError, ValueError):
            raise EnOSAPIError(
                f"the reply is not a time in ms: {data!r:.200}", operation="get_server_time"
            ) from None

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials with one cheap authenticated read; never raises."""
        try:
            settings = self.settings
            if settings.user_id and settings.org_id:
                server_ms = self.get_server_time()
                return (
                    True,
                    f"Connected to {settings.gateway_url}: signed call accepted, server time {server_ms} ms",
                )
            self._access_token()
            return True, (
                f"Connected to {settings.gateway_url}: credentials accepted; set the org_id and user_id "
                "extras to use Batch Processing"
            )
        except Exception as err:  # noqa: BLE001 - the UI and CLI expect a verdict, not a traceback
            return False, str(err)

    # ----------------------------------------------------------------- transport

    @property
    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy: the hook's overrides, else the connection's extras."""
        settings = self.settings
        return RetryPolicy(
            retries=settings.retries if self.retries_override is None else self.retries_override,
            max_wait=settings.retry_max_wait
            if self.retry_max_wait_override is None
            else self.retry_max_wait_override,
            base_delay=self.retry_base_delay,
        )

    def _run(
        self,
        op: _Op,
        user_id: str | None,
        org_id: str | None,
        before_repeat: Callable[[EnOSError], Any] | None = None,
    ) -> Any:
        path, query = self._batch_target(self.settings, op, user_id, org_id)
        refreshed = False

        def attempt() -> Any:
            nonlocal refreshed
            token = _given_up(self._access_token)
            try:
                return self._send(op.name, op.method, path, query, op.body, token, op.flow_inst_id)
            except EnOSAPIError as err:
                if refreshed or not _token_refused(err):
                    raise
            refreshed = True
            self.log.info("EnOS refused the access token for %s (expired); getting a new one", op.name)
            token = _given_up(self._access_token, stale=token)
            return self._send(op.name, op.method, path, query, op.body, token, op.flow_inst_id)

        try:
            return self._retrying(op.name, op.flow_inst_id, op.idempotent, attempt, before_repeat)
        except EnOSAPIError as err:
            raise _explain_clock_skew(err) from None

    async def _arun(self, op: _Op, user_id: str | None, org_id: str | None) -> Any:
        path, query = self._batch_target(await self.asettings(), op, user_id, org_id)
        refreshed = False

        async def attempt() -> Any:
            nonlocal refreshed
            token = await _agiven_up(self._aaccess_token)
            try:
                return await self._asend(op.name, op.method, path, query, op.body, token, op.flow_inst_id)
            except EnOSAPIError as err:
                if refreshed or not _token_refused(err):
                    raise
            refreshed = True
            self.log.info("EnOS refused the access token for %s (expired); getting a new one", op.name)
            token = await _agiven_up(self._aaccess_token, stale=token)
            return await self._asend(op.name, op.method, path, query, op.body, token, op.flow_inst_id)

        try:
            return await self._aretrying(op.name, op.flow_inst_id, op.idempotent, attempt)
        except EnOSAPIError as err:
            raise _explain_clock_skew(err) from None

    def _retrying(
        self,
        name: str,
        flow_inst_id: str | None,
        idempotent: bool,
        attempt: Callable[[], Any],
        before_repeat: Callable[[EnOSError], Any] | None = None,
    ) -> Any:
        """Run ``attempt`` until it succeeds or the policy gives up.

        :param before_repeat: for a call that is not idempotent: called before repeating it after a
            failure that may have reached EnOS; its result, unless None, is taken as the call's (the
            work was done although the reply was lost), and None makes repeating safe. Such repeats
            share the one attempt count and wait budget of the policy.
        """
        policy, waited = self.retry_policy, 0.0
        for number in itertools.count(1):
            try:
                return attempt()
            except _GiveUp as stop:
                raise stop.err from None
            except EnOSError as err:
                delay = policy.delay(number, err, idempotent or before_repeat is not None, waited)
                if delay is None:
                    raise
                if before_repeat is not None and retry_reason(err, idempotent) is None:
                    done = before_repeat(err)
                    if done is not None:
                        return done
                self._log_retry(name, flow_inst_id, number, policy, err, delay)
                time.sleep(delay)
                waited += delay
        raise AssertionError("unreachable")

    async def _aretrying(
        self, name: str, flow_inst_id: str | None, idempotent: bool, attempt: Callable[[], Awaitable[Any]]
    ) -> Any:
        policy, waited = self.retry_policy, 0.0
        for number in itertools.count(1):
            try:
                return await attempt()
            except _GiveUp as stop:
                raise stop.err from None
            except EnOSError as err:
                delay = policy.delay(number, err, idempotent, waited)
                if delay is None:
                    raise
                self._log_retry(name, flow_inst_id, number, policy, err, delay)
                await asyncio.sleep(delay)
                waited += delay
        raise AssertionError("unreachable")

    def _log_retry(
        self,
        name: str,
        flow_inst_id: str | None,
        number: int,
        policy: RetryPolicy,
        err: EnOSError,
        delay: float,
    ) -> None:
        self.retry_count.add()
        self.log.warning(
            "EnOS %s of flow instance %s failed on attempt %s of %s (%s); retrying in %.2f s",
            name, flow_inst_id or "-", number, policy.retries + 1, retry_reason(err, True), delay,
        )  # fmt: skip

    @staticmethod
    def _batch_target(
        settings: EnOSConnectionSettings, op: _Op, user_id: str | None, org_id: str | None
    ) -> tuple[str, list[tuple[str, str]]]:
        user, org = settings.batch_identity(user_id, org_id)
        return BATCH_PATH + op.resource, [("action", op.action), ("userId", user), ("orgId", org), *op.query]

    def _token_request(self) -> dict[str, Any]:
        settings = self.settings
        timestamp = _TOKENS.next_timestamp()
        return {
            "appKey": settings.access_key,
            "timestamp": timestamp,
            "encryption": token_encryption(settings.access_key, timestamp, settings.secret_key),
        }

    def _access_token(self, *, stale: str | None = None) -> str:
        settings = self.settings
        key = (settings.gateway_url, settings.access_key)
        if token := _TOKENS.valid(key, stale):
            return token
        with _TOKENS.lock:  # held across the fetch, so concurrent threads wait for one token
            if token := _TOKENS.valid(key, stale):
                return token

            def attempt() -> str:
                body = self._token_request()  # a fresh timestamp each attempt: no 1001 replay
                return _TOKENS.store(
                    key, self._send("get_access_token", "POST", TOKEN_PATH, [], body, None, None)
                )

            fetched: str = self._retrying("get_access_token", None, True, attempt)
            mask_secret(fetched)
            return fetched

    async def _aaccess_token(self, *, stale: str | None = None) -> str:
        settings = await self.asettings()
        key = (settings.gateway_url, settings.access_key)
        if token := _TOKENS.valid(key, stale):
            return token
        async with _TOKENS.async_lock():
            if token := _TOKENS.valid(key, stale):
                return token

            async def attempt() -> str:
                body = self._token_request()
                reply = await self._asend("get_access_token", "POST", TOKEN_PATH, [], body, None, None)
                return _TOKENS.store(key, reply)

            fetched: str = await self._aretrying("get_access_token", None, True, attempt)
            await amask_secret(fetched)
            return fetched

    def _prepare(
        self, path: str, query: list[tuple[str, str]], body: dict[str, Any] | None, token: str | None
    ) -> tuple[str, bytes | None, dict[str, str]]:
        settings = self.settings
        # Serialised once: these exact bytes are both signed and sent.
        payload = (
            None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        url = settings.gateway_url + path + ("?" + urlencode(query, quote_via=quote) if query else "")
        headers = {"Content-Type": JSON_CONTENT_TYPE} if payload is not None else {}
        if token is not None:
            timestamp = int(time.time() * 1000)
            headers["apim-accesstoken"] = token
            headers["apim-timestamp"] = str(timestamp)
            headers["apim-signature"] = request_signature(
                token, query, payload, timestamp, settings.secret_key
            )
        return url, payload, headers

    @property
    def _timeout(self) -> float:
        return self.timeout_override if self.timeout_override is not None else self.settings.timeout

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: dict[str, Any] | None,
        token: str | None,
        flow_inst_id: str | None,
    ) -> Any:
        url, payload, headers = self._prepare(path, query, body, token)
        try:
            reply = self.session.request(
                method,
                url,
                data=payload,
                headers=headers,
                timeout=self._timeout,
                verify=self._requests_verify,
            )
        except requests.exceptions.SSLError:
            raise self._unreachable(operation, flow_inst_id, "tls", maybe_sent=False) from None
        except requests.ConnectTimeout:
            raise self._unreachable(operation, flow_inst_id, "timeout", maybe_sent=False) from None
        except requests.Timeout:
            raise self._unreachable(operation, flow_inst_id, "timeout") from None
        except requests.ConnectionError as err:
            # urllib3 wraps "could not connect" in NewConnectionError; anything else may have been sent.
            sent = "NewConnectionError" not in repr(err) and "NameResolutionError" not in repr(err)
            why = f"{type(err).__name__}: {err}"
            raise self._unreachable(operation, flow_inst_id, why, maybe_sent=sent) from None
        except requests.RequestException as err:
            raise self._unreachable(operation, flow_inst_id, f"{type(err).__name__}: {err}") from None
        return parse_reply(
            http_status=reply.status_code,
            body=reply.content,
            operation=operation,
            flow_inst_id=flow_inst_id,
            headers=reply.headers,
        )

    async def _asend(
        self,
        operation: str,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: dict[str, Any] | None,
        token: str | None,
        flow_inst_id: str | None,
    ) -> Any:
        import aiohttp
        import yarl

        url, payload, headers = self._prepare(path, query, body, token)
        client = _async_client(self.settings.verify)
        timeout = aiohttp.ClientTimeout(total=self._timeout, sock_connect=self._timeout)
        try:
            # encoded=True: the query is already percent-encoded exactly as it was signed.
            async with client.request(
                method, yarl.URL(url, encoded=True), data=payload, headers=headers, timeout=timeout
            ) as reply:
                content = await reply.read()
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError):
            raise self._unreachable(operation, flow_inst_id, "tls", maybe_sent=False) from None
        except aiohttp.ConnectionTimeoutError:
            raise self._unreachable(operation, flow_inst_id, "timeout", maybe_sent=False) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise self._unreachable(operation, flow_inst_id, "timeout") from None
        except aiohttp.ClientConnectorError as err:
            why = f"{type(err).__name__}: {err}"
            raise self._unreachable(operation, flow_inst_id, why, maybe_sent=False) from None
        except aiohttp.ClientError as err:
            raise self._unreachable(operation, flow_inst_id, f"{type(err).__name__}: {err}") from None
        return parse_reply(
            http_status=reply.status,
            body=content,
            operation=operation,
            flow_inst_id=flow_inst_id,
            headers=reply.headers,
        )

    def _unreachable(
        self, operation: str, flow_inst_id: str | None, why: str, *, maybe_sent: bool = True
    ) -> EnOSConnectionError:
        gateway = self.settings.gateway_url
        about = f"EnOS {operation}{_about(flow_inst_id)}"
        if why == "tls":
            return EnOSConnectionError(
                f"{about}: TLS verification of {gateway} failed; set the connection's 'verify' extra to a "
                "CA bundle path if the gateway uses a private CA",
                maybe_sent=False,
                tls=True,
            )
        if why == "timeout":
            return EnOSConnectionError(
                f"{about}: no reply from {gateway} within {self._timeout:g} s", maybe_sent=maybe_sent
            )
        return EnOSConnectionError(f"{about}: could not reach {gateway} ({why})", maybe_sent=maybe_sent)


class _GiveUp(Exception):
    """Carries an error that was already retried (a token fetch) past an outer retry loop."""

    def __init__(self, err: EnOSError) -> None:
        super().__init__(str(err))
        self.err = err


def _given_up(fetch: Callable[..., str], **kwargs: Any) -> str:
    try:
        return fetch(**kwargs)
    except EnOSError as err:
        raise _GiveUp(err) from None


async def _agiven_up(fetch: Callable[..., Awaitable[str]], **kwargs: Any) -> str:
    try:
        return await fetch(**kwargs)
    except EnOSError as err:
        raise _GiveUp(err) from None


class RetryCounter:
    """Count the retries a hook made, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a failed call.

    :param retries: how many times a call is repeated at most.
    :param max_wait: the most seconds spent waiting between the attempts of one call.
    :param base_delay: the first backoff; it doubles each time, with full jitter, up to ``max_delay``.
    :param max_delay: the longest single backoff (and the cap on ``Retry-After``).
    """

    retries: int
    max_wait: float
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, err: EnOSError, idempotent: bool, waited: float) -> float | None:
        """Return the seconds to wait before the next attempt, or None to give up.

        :param attempt: the attempt that just failed, from 1.
        :param err: how it failed.
        :param idempotent: whether repeating the call is safe if it may have reached EnOS.
        :param waited: seconds already spent waiting for this call.
        """
        if attempt > self.retries or retry_reason(err, idempotent) is None:
            return None
        asked = getattr(err, "retry_after", None)
        if asked is not None:
            wait = min(asked, self.max_delay)
        else:
            wait = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return wait if waited + wait <= self.max_wait else None


def _explain_clock_skew(err: EnOSAPIError) -> EnOSAPIError:
    # A signature refused although the token was fresh is most often a clock that is off.
    if err.http_status != 401 or err.server_time is None:
        return err
    skew = time.time() - err.server_time
    if abs(skew) < CLOCK_SKEW_WARNING:
        return err
    direction = "ahead of" if skew > 0 else "behind"
    return EnOSAuthenticationError(
        err.message,
        operation=err.operation,
        code=err.code,
        http_status=err.http_status,
        request_id=err.request_id,
        flow_inst_id=err.flow_inst_id,
        hint=(
            f"This machine's clock is {abs(skew):.0f} s {direction} the gateway's (measured against the "
            "reply's Date header): the signature's timestamp is out of range. Synchronise the clock (NTP)"
        ),
        server_time=err.server_time,
    )


def _token_refused(err: EnOSAPIError) -> bool:
    return err.code == EnOSCode.TOKEN_EXPIRED or err.http_status == 401


def to_flow_id(value: object) -> int:
    """Return a workflow id as the integer EnOS expects.

    :param value: an int, or a string of digits.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnOSValidationError(f"flow_id must be a non-negative integer (the workflow id), got {value!r}")
    return value


def to_epoch_ms(value: object, field: str = "trigger_time") -> int:
    """Return a time as milliseconds since the epoch.

    :param value: ms since the epoch (int) or a timezone-aware datetime.
    :param field: the parameter name to show in the error.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise EnOSValidationError(f"{field} must be timezone-aware, got naive {value.isoformat()}")
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnOSValidationError(f"{field} must be ms since the epoch or an aware datetime, got {value!r}")
    return value


def _statuses(value: object) -> list[EnOSFlowInstanceStatus]:
    statuses = status_list(value, "status")
    if not statuses:
        raise EnOSValidationError("status must name at least one status, got an empty list")
    return statuses


def _expect_dict(data: Any, op: _Op) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise EnOSAPIError(
            f"expected an object in data, got {data!r:.200}", operation=op.name, flow_inst_id=op.flow_inst_id
        )
    return dict(data)


def _about(flow_inst_id: str | None) -> str:
    return f" of flow instance {flow_inst_id}" if flow_inst_id else ""


_LEASES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def async_clients_lease() -> AsyncIterator[None]:
    """Keep the loop's shared sessions open while in use; the last user out closes them.

    Each trigger holds a lease while it runs, so a triggerer keeps its connections across thousands
    of waits, and a loop that ends (``dag.test()``, a worker waiting inline) leaves none open.
    """
    loop = asyncio.get_running_loop()
    _LEASES[loop] = _LEASES.get(loop, 0) + 1
    try:
        yield
    finally:
        _LEASES[loop] -= 1
        if not _LEASES[loop]:
            await aclose_async_clients()


async def aclose_async_clients() -> None:
    """Close the async clients of the running event loop (a worker running a wait inline calls this)."""
    for client in _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await client.close()
