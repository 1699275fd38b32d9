"""Turn an ``enos`` connection into settings and run the protocol core's flows over a transport.

:class:`EnOSBaseHook` is the plumbing every EnOS hook shares (the connection form, settings, retry
policy, the sync and async drivers, Test); :class:`~airflow_enos_provider.hooks.enos.EnOSHook` adds
the Batch Processing operations on top, as the Databricks provider splits ``databricks_base``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Self, TypeVar

import requests

from airflow_enos_provider._compat import BaseHook, amask_secret, mask_secret
from airflow_enos_provider._connection import (
    CONN_TYPE,
    EnOSConnectionSettings,
    shared_settings,
    warn_about_transport,
)
from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.envelope import expect_dict
from airflow_enos_provider._protocol.flow import Caller, Flow
from airflow_enos_provider._protocol.operations import Operation
from airflow_enos_provider._protocol.retry import RetryCounter, RetryPolicy
from airflow_enos_provider._transports.drivers import run_sync
from airflow_enos_provider._transports.sync import RequestsTransport
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSError

__all__ = ["EnOSBaseHook"]

_T = TypeVar("_T")


class EnOSBaseHook(BaseHook):
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
    :param retry_policy: instead of the four above, this policy (a cancel's that outlasts outages).
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
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.enos_conn_id = enos_conn_id
        self.timeout_override = timeout
        self.retries_override = retries
        self.retry_max_wait_override = retry_max_wait
        self.retry_base_delay = retry_base_delay
        self.retry_policy_override = retry_policy
        self.retry_count = RetryCounter()

    # ----------------------------------------------------------------- connection -> settings

    @cached_property
    def settings(self) -> EnOSConnectionSettings:
        """Return the connection's validated settings (read once per hook)."""
        settings = EnOSConnectionSettings.from_connection(self.get_connection(self.enos_conn_id))
        mask_secret(settings.secret_key)
        warn_about_transport(settings, self.log)
        return settings

    async def asettings(self) -> EnOSConnectionSettings:
        """Return the connection's validated settings, reading the connection without blocking.

        Hooks in one event loop share one read per connection id for ``SETTINGS_TTL`` seconds.
        """
        if "settings" not in self.__dict__:
            self.__dict__["settings"] = await shared_settings(self.enos_conn_id, self._aread_settings)
        return self.__dict__["settings"]  # type: ignore[no-any-return]

    async def _aread_settings(self) -> EnOSConnectionSettings:
        if hasattr(self, "aget_connection"):
            conn = await self.aget_connection(self.enos_conn_id)
        else:  # Airflow < 3.1: read it in a thread rather than block the loop
            conn = await asyncio.to_thread(self.get_connection, self.enos_conn_id)
        settings = EnOSConnectionSettings.from_connection(conn)
        await amask_secret(settings.secret_key)
        warn_about_transport(settings, self.log)
        return settings

    def with_limits(
        self, *, timeout: float | None = None, retries: int | None = None, policy: RetryPolicy | None = None
    ) -> Self:
        """Return a hook on the same connection with other limits, reusing the settings already read.

        :param timeout: seconds per request (None: the connection's ``timeout`` extra).
        :param retries: how many times a call is repeated (None: the connection's ``retries`` extra).
        :param policy: instead of ``retries``, this retry policy.
        """
        hook = type(self)(
            self.enos_conn_id,
            timeout=timeout,
            retries=retries,
            retry_max_wait=self.retry_max_wait_override,
            retry_base_delay=self.retry_base_delay,
            retry_policy=policy,
        )
        if "settings" in self.__dict__:
            # Immutable, so sharing is safe; the new hook gets its own session and retry counter.
            hook.__dict__["settings"] = self.settings
        return hook

    @property
    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy: the hook's overrides, else the connection's extras."""
        return self._policy(self.settings)

    def _policy(self, settings: EnOSConnectionSettings) -> RetryPolicy:
        if self.retry_policy_override is not None:
            return self.retry_policy_override
        return RetryPolicy(
            retries=settings.retries if self.retries_override is None else self.retries_override,
            max_wait=settings.retry_max_wait
            if self.retry_max_wait_override is None
            else self.retry_max_wait_override,
            base_delay=self.retry_base_delay,
        )

    def _caller(self, settings: EnOSConnectionSettings, user_id: str | None, org_id: str | None) -> Caller:
        timeout = settings.timeout if self.timeout_override is None else self.timeout_override
        return Caller(settings, self._policy(settings), timeout, self.log, self.retry_count, user_id, org_id)

    # ----------------------------------------------------------------- running the core's flows

    @cached_property
    def _transport(self) -> RequestsTransport:
        return RequestsTransport(self.settings)

    @property
    def session(self) -> requests.Session:
        """Return this hook's keep-alive HTTP session, pooled for bulk cancels."""
        return self._transport.session

    def get_conn(self) -> requests.Session:
        """Return this hook's HTTP session."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session's pooled connections."""
        if "_transport" in self.__dict__:
            self._transport.close()
            del self.__dict__["_transport"]

    def _run(
        self, procedure: Callable[[Caller], Flow[_T]], user_id: str | None = None, org_id: str | None = None
    ) -> _T:
        caller = self._caller(self.settings, user_id, org_id)
        return run_sync(procedure(caller), self._transport, mask_secret)

    async def _arun(
        self, procedure: Callable[[Caller], Flow[_T]], user_id: str | None = None, org_id: str | None = None
    ) -> _T:
        from airflow_enos_provider._transports.aio import AiohttpTransport
        from airflow_enos_provider._transports.drivers import run_async

        caller = self._caller(await self.asettings(), user_id, org_id)
        return await run_async(procedure(caller), AiohttpTransport(caller.settings.verify), amask_secret)

    def _call(
        self,
        op: Operation,
        user_id: str | None = None,
        org_id: str | None = None,
        before_repeat: Callable[[EnOSError], Any] | None = None,
    ) -> Any:
        """Run one EnOS call (:meth:`~.flow.Caller.call`) and return its reply's ``data``."""
        return self._run(lambda caller: caller.call(op, before_repeat), user_id, org_id)

    async def _acall(self, op: Operation, user_id: str | None = None, org_id: str | None = None) -> Any:
        return await self._arun(lambda caller: caller.call(op), user_id, org_id)

    def _read(self, op: Operation, user_id: str | None = None, org_id: str | None = None) -> dict[str, Any]:
        return expect_dict(self._call(op, user_id, org_id), op)

    async def _aread(
        self, op: Operation, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        return expect_dict(await self._acall(op, user_id, org_id), op)

    def get_server_time(self, *, user_id: str | None = None, org_id: str | None = None) -> int:
        """Return EnOS's current time in milliseconds since the epoch (UTC).

        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        data = self._call(ops.GET_CURRENT_TIME, user_id, org_id)
        try:
            return int(data)
        except (TypeError, ValueError):
            raise EnOSAPIError(
                f"the reply is not a time in ms: {data!r:.200}", operation="get_server_time"
            ) from None

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials, then that the connection can make Batch calls; never raises."""
        try:
            settings = self.settings
            # The credentials first, with a token request of their own (a cached token proves nothing):
            # the cached one, if any, counts as stale, and the new one is kept for the call below.
            self._run(lambda caller: caller.token(stale=caller.tokens.valid(caller.token_key)))
            missing = [name for name in ("org_id", "user_id") if not getattr(settings, name)]
            if missing:
                return False, (
                    f"Credentials accepted by {settings.gateway_url}, but the connection has no "
                    f"{' and no '.join(missing)} extra: every Batch Processing call needs both"
                )
            server_ms = self.get_server_time()
            server_time = datetime.fromtimestamp(server_ms / 1000, UTC).isoformat(timespec="milliseconds")
            return (
                True,
                f"Connected to {settings.gateway_url}: signed call accepted, server time {server_time}",
            )
        except Exception as err:  # noqa: BLE001 - the UI and CLI expect a verdict, not a traceback
            return False, str(err)
