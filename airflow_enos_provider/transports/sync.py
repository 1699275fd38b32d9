"""The blocking transport, on ``requests``: one keep-alive session per hook, pooled for bulk cancels."""

from __future__ import annotations

import os

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from airflow_enos_provider.connection import EnOSConnectionSettings
from airflow_enos_provider.protocol.operations import USER_AGENT, PreparedRequest, RawReply
from airflow_enos_provider.protocol.transport import Failure, connection_error

DEFAULT_POOL_SIZE = 16

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
        self.session = session
        self.widen_pool(DEFAULT_POOL_SIZE)
        # trust_env is off: honour REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE as requests would.
        verify = settings.verify
        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.verify = verify

    def widen_pool(self, size: int) -> None:
        """Keep up to ``size`` connections open, for that many requests in flight at once.

        :param size: the pool size.
        """
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def send(self, request: PreparedRequest) -> RawReply:
        """Send the request and return the reply; raise ``EnOSConnectionError`` when none came.

        :param request: the prepared request.
        """
        try:
            reply = self.session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=request.timeout,
                verify=self.verify,
            )
        except requests.RequestException as err:
            raise connection_error(request, _failure(err), err) from None
        return RawReply(reply.status_code, reply.content, reply.headers)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


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
