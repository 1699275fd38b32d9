"""The async transport, on ``aiohttp``: one session per event loop and TLS setting, held by leases.

aiohttp, not httpx: a thousand waiting triggers poll at about an eighth of httpx's CPU per request.
Imported only on the async path (about 100 ms that a worker's sync task never needs). Redirects are
never followed; aiohttp's ``total`` timeout is the request's one deadline, connect to last body byte;
no more of a body is read than the parser accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections.abc import AsyncIterator

import aiohttp
import yarl

from airflow_enos_provider._protocol.envelope import MAX_REPLY_BYTES
from airflow_enos_provider._protocol.operations import USER_AGENT, PreparedRequest, RawReply
from airflow_enos_provider._protocol.transport import Failure, connection_error

# aiohttp's exceptions -> how the request failed; the first that matches wins (subclasses first).
_FAILURES: tuple[tuple[type[BaseException], Failure], ...] = (
    (aiohttp.ClientConnectorCertificateError, Failure.TLS),
    (aiohttp.ClientSSLError, Failure.TLS),
    (aiohttp.ConnectionTimeoutError, Failure.CONNECT_TIMEOUT),
    (aiohttp.ServerTimeoutError, Failure.READ_TIMEOUT),
    (TimeoutError, Failure.READ_TIMEOUT),
    (aiohttp.ClientConnectorError, Failure.NOT_CONNECTED),
    (aiohttp.ClientError, Failure.BROKEN),
)
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool | str, aiohttp.ClientSession]] = (
    weakref.WeakKeyDictionary()
)
_LEASES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


class AiohttpTransport:
    """Send prepared requests over the running loop's shared session for one TLS setting.

    :param verify: TLS verification: True, False, or a CA bundle path.
    """

    def __init__(self, verify: bool | str) -> None:
        self.verify = verify

    async def send(self, request: PreparedRequest) -> RawReply:
        """Send the request and return the reply; raise ``EnOSConnectionError`` when none came.

        :param request: the prepared request.
        """
        timeout = aiohttp.ClientTimeout(total=request.timeout, sock_connect=request.timeout)
        try:
            # encoded=True: the query is already percent-encoded exactly as it was signed.
            async with _client(self.verify).request(
                request.method,
                yarl.URL(request.url, encoded=True),
                data=request.body,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
            ) as reply:
                content = bytearray()
                async for chunk in reply.content.iter_chunked(64 * 1024):
                    content += chunk
                    if len(content) > MAX_REPLY_BYTES:
                        break  # one byte more than the parser accepts is enough to refuse it
        except (aiohttp.ClientError, TimeoutError) as err:
            failure = next(failure for kind, failure in _FAILURES if isinstance(err, kind))
            raise connection_error(request, failure, err) from None
        return RawReply(reply.status, bytes(content[: MAX_REPLY_BYTES + 1]), reply.headers)


def _client(verify: bool | str) -> aiohttp.ClientSession:
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
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


@contextlib.asynccontextmanager
async def clients_lease() -> AsyncIterator[None]:
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
            await aclose_clients()


async def aclose_clients() -> None:
    """Close the async sessions of the running event loop (a worker running a wait inline calls this)."""
    for client in _CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await client.close()
