"""The blocking transport, on ``requests``: one keep-alive session per hook, pooled for bulk cancels.

Redirects are never followed (a 3xx is the reply, which the parser refuses), each request has one
deadline for all of it (``transports/deadline.py``), and no more of a body is read than the parser accepts.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from airflow_enos_provider._connection import EnOSConnectionSettings
from airflow_enos_provider._protocol.envelope import MAX_REPLY_BYTES
from airflow_enos_provider._protocol.operations import USER_AGENT, PreparedRequest, RawReply
from airflow_enos_provider._protocol.transport import Failure, connection_error
from airflow_enos_provider._transports.deadline import POOL_CLASSES, deadline

#: The most requests in flight at once through one hook (``max_concurrency``'s upper bound): the pool
#: keeps as many connections as were in use at once, so up to this many threads never discard one.
MAX_CONCURRENCY = 256
_CHUNK = 64 * 1024

# requests' exceptions -> how the request failed; the first that matches wins (subclasses first).
_FAILURES: tuple[tuple[type[requests.RequestException], Failure], ...] = (
    (requests.exceptions.SSLError, Failure.TLS),
    (requests.ConnectTimeout, Failure.CONNECT_TIMEOUT),
    (requests.Timeout, Failure.READ_TIMEOUT),
    (requests.RequestException, Failure.BROKEN),
)


class RequestsTransport:
    """Send prepared requests over one keep-alive :class:`requests.Session`.

    :param settings: the connection (its gateway, for proxies, and its TLS setting).
    """

    def __init__(self, settings: EnOSConnectionSettings) -> None:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        # With trust_env on, requests re-reads every proxy variable and ~/.netrc on each request (a
        # quarter of a cancel's CPU): read the proxies once here; auth is in signed headers, never netrc.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(settings.gateway_url))
        adapter = _DeadlineAdapter(pool_connections=1, pool_maxsize=MAX_CONCURRENCY)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self.session = session
        # trust_env is off: honour REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE as requests would.
        verify = settings.verify
        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.verify = verify

    def send(self, request: PreparedRequest) -> RawReply:
        """Send the request and return the reply; raise ``EnOSConnectionError`` when none came.

        :param request: the prepared request.
        """
        with deadline(request.timeout) as due:
            try:
                reply = self.session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=request.headers,
                    timeout=(due.remaining(), due.remaining()),
                    verify=self.verify,
                    allow_redirects=False,
                    stream=True,
                )
                with reply:
                    body = _read_capped(reply)
            except requests.RequestException as err:
                failure = _failure(err)
                if due.expired and failure is not Failure.CONNECT_TIMEOUT:
                    failure = Failure.READ_TIMEOUT  # the watchdog cut the exchange short
                raise connection_error(request, failure, err) from None
            if due.expired:
                # Cut mid-headers, http.client may take what came for a reply without a length:
                # whatever was read after the deadline is no reply.
                raise connection_error(request, Failure.READ_TIMEOUT, TimeoutError("deadline"))
        return RawReply(reply.status_code, body, reply.headers)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections obey the request's deadline, direct or through an HTTP proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(POOL_CLASSES)
        return manager


def _read_capped(reply: requests.Response) -> bytes:
    # One byte more than the parser accepts is enough for it to refuse the reply as too big.
    body = bytearray()
    for chunk in reply.iter_content(_CHUNK):
        body += chunk
        if len(body) > MAX_REPLY_BYTES:
            break
    return bytes(body[: MAX_REPLY_BYTES + 1])


def _failure(err: requests.RequestException) -> Failure:
    # urllib3 wraps "could not connect" (refused, unreachable, no such host) in NewConnectionError.
    if isinstance(err, requests.ConnectionError) and _caused_by(err, NewConnectionError):
        return Failure.NOT_CONNECTED
    return next(failure for kind, failure in _FAILURES if isinstance(err, kind))


def _caused_by(err: BaseException, kind: type[BaseException]) -> bool:
    # requests -> urllib3 MaxRetryError(reason=...) -> the socket-level error.
    seen: BaseException | None = err
    for _ in range(5):
        if seen is None or isinstance(seen, kind):
            return seen is not None
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = reason if isinstance(reason, BaseException) else nested
    return False
