"""Serve the emulated EnOS API gateway (token service + Batch Processing v2.1) over loopback HTTP.

The server only speaks HTTP: it parses requests, checks the access token and the signature with
:mod:`airflow_enos_provider.signing`, routes to :class:`EmulatorState` and wraps the answer in the
reply envelope. Every request is recorded before its reply is written, so a client that has its
answer can already see the request in :attr:`EmulatorState.requests`.
"""

from __future__ import annotations

import contextlib
import email.utils
import hmac
import json
import logging
import os
import socket
import socketserver
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from airflow_enos_provider.emulator.faults import Fault
from airflow_enos_provider.emulator.state import (
    BP_INTERNAL,
    BP_INVALID_PARAMETER,
    TOKEN_EXPIRED,
    ApiError,
    EmulatorState,
    RecordedRequest,
)
from airflow_enos_provider.protocol.signing import request_signature

logger = logging.getLogger("airflow_enos_provider.emulator")

TOKEN_PREFIX = "/apim-token-service/v2.0/token/"
BATCH_PREFIX = "/batch-processing-service/v2.1/"
TOKEN_BUSINESS = "apim-token-service"
# resource -> HTTP method -> the actions that resource answers on that method
BATCH_ROUTES: dict[str, dict[str, tuple[str, ...]]] = {
    "flowInstances": {"GET": ("get",), "POST": ("cancel", "search")},
    "flows": {"GET": ("get",), "POST": ("trigger", "updateAndTrigger", "triggerFromTask")},
    "time": {"GET": ("getCurrentTime",)},
}
MAX_BODY_BYTES = 10 * 1024 * 1024

_NOT_FOUND = {"message": "Not Found"}
_INVALID_CREDENTIALS = {"message": "Invalid credentials"}
_BAD_SIGNATURE = {"message": "Signature verification failed"}
_STALE_TIMESTAMP = {"message": "Signature verification failed: timestamp out of range"}
_EXPIRED = {"code": TOKEN_EXPIRED, "msg": "Access token expired"}
# Stands for a body that is not JSON, so it differs from both "no body" and any JSON value.
_UNPARSEABLE = object()

# (operation name or None, HTTP status, JSON reply)
_Reply = tuple[str | None, int, dict[str, Any]]


class _BadRequest(Exception):
    """Signal a request whose body cannot even be read (bad framing)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bursts of parallel clients should queue, not be refused.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state = state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall on loopback.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Small JSON replies must not wait for Nagle's algorithm (40 ms stalls with keep-alive).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop connections are normal in tests; keep stderr quiet.
        logger.debug("error while serving %s", client_address, exc_info=True)

    def track(self, sock: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            if is_open:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_open_connections(self) -> None:
        # Keep-alive handler threads would otherwise keep answering after stop().
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.state.register_connection()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header follows the emulator's clock, so a client can measure its skew against it.
        return email.utils.formatdate(
            self.server.state.now() if timestamp is None else timestamp, usegmt=True
        )

    def log_message(self, fmt: str, *args: Any) -> None:
        # The request line holds no secrets (tokens travel in headers, which are never logged).
        logger.debug("%s - %s", self.address_string(), fmt % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        path = raw_path.rstrip("/") or "/"
        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query.setdefault(name, value)
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._finish(method, path, query, None, (None, 400, {"message": str(exc)}))
            return
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = _UNPARSEABLE
        operation = _operation_of(method, path, query)
        fault = self.server.state.faults.take(operation)
        if fault is not None and not fault.processed:
            self._unprocessed_fault(method, path, operation, query, parsed, fault)
            return
        if fault is not None and fault.kind == "token_expired":
            self.server.state.expire_tokens()
        try:
            reply = self._route(method, path, operation, query, body, parsed)
        except Exception:
            logger.exception("emulator failed on %s %s", method, path)
            reply = (None, 500, _envelope(BP_INTERNAL, "Internal server exception", None))
        self._finish(method, path, query, parsed, reply, fault=fault)

    def _unprocessed_fault(
        self,
        method: str,
        path: str,
        operation: str | None,
        query: dict[str, str],
        parsed: Any,
        fault: Fault,
    ) -> None:
        if fault.kind == "reset_before":
            self._record(method, path, query, parsed, operation, None, 0, fault)
            self._reset()
            return
        if fault.kind == "http_429":
            reply = (operation, 429, {"message": "Too Many Requests"})
            self._finish(
                method, path, query, parsed, reply, fault=fault, headers={"Retry-After": fault.retry_after}
            )
        elif fault.kind == "http_5xx":
            reply = (operation, fault.status, {"message": f"Gateway error {fault.status}"})
            self._finish(method, path, query, parsed, reply, fault=fault)
        elif fault.kind == "html":
            title = f"{fault.status} Bad Gateway"
            page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
            self._finish(
                method, path, query, parsed, (operation, fault.status, {}), fault=fault, raw=page.encode()
            )
        elif fault.kind == "non_json":
            self._finish(method, path, query, parsed, (operation, 200, {}), fault=fault, raw=b"OK")
        else:  # unknown_code
            unknown: dict[str, Any] = {"code": 99999, "msg": "Unknown error", "data": None}
            reply = (operation, 200, {**unknown, "requestId": uuid.uuid4().hex})
            self._finish(method, path, query, parsed, reply, fault=fault)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if not raw_length:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            raise _BadRequest("Bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BadRequest("Request Entity Too Large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("Bad chunked encoding") from None
            if size == 0:
                # Discard trailers up to the blank line that ends the message.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest("Request Entity Too Large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _route(
        self,
        method: str,
        path: str,
        operation: str | None,
        query: dict[str, str],
        body: bytes,
        parsed: Any,
    ) -> _Reply:
        if operation in ("token.get", "token.refresh"):
            return self._token(operation, body, parsed)
        # A known resource answers even an unsupported action (with an API error, not a 404).
        if path.startswith(BATCH_PREFIX) and method in BATCH_ROUTES.get(path[len(BATCH_PREFIX) :], {}):
            return self._batch(method, operation, query, body, parsed)
        return None, 404, _NOT_FOUND

    def _token(self, operation: str, body: bytes, parsed: Any) -> _Reply:
        state = self.server.state
        # An empty body is "parameters empty" (1202); a body that is not JSON is "invalid" (1004).
        request = parsed if body else {}
        try:
            data = state.token_get(request) if operation == "token.get" else state.token_refresh(request)
        except ApiError as exc:
            return operation, 200, _token_envelope(exc.code, exc.msg, None)
        return operation, 200, _token_envelope(0, "SUCCESS", data)

    def _batch(
        self, method: str, operation: str | None, query: dict[str, str], body: bytes, parsed: Any
    ) -> _Reply:
        state = self.server.state
        action = query.get("action") or ""
        failure = self._authenticate(query, body)
        if failure is not None:
            return operation, 401, failure
        request_id = uuid.uuid4().hex
        try:
            if not action:
                raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: action is required")
            user_id = state.check_user(query)
            if operation is None:
                raise ApiError(BP_INVALID_PARAMETER, f"Invalid parameter: unsupported action {action!r}")
            if method == "POST" and not isinstance(parsed, dict):
                raise ApiError(BP_INVALID_PARAMETER, "Invalid request body.")
            data = self._operate(operation, user_id, query, parsed)
        except ApiError as exc:
            return operation, 200, _envelope(exc.code, exc.msg, request_id)
        return operation, 200, {"code": 0, "msg": "OK", "data": data, "requestId": request_id}

    def _authenticate(self, query: dict[str, str], body: bytes) -> dict[str, Any] | None:
        token = self.headers.get("apim-accesstoken")
        verdict, secret = self.server.state.authenticate(token)
        if verdict == "expired":
            return _EXPIRED
        if verdict != "ok" or token is None or secret is None:
            return _INVALID_CREDENTIALS
        signature = self.headers.get("apim-signature") or ""
        try:
            timestamp_ms = int(self.headers.get("apim-timestamp") or "")
        except ValueError:
            return _BAD_SIGNATURE
        # The dict holds each name's first value, which is all the signature covers of a repeated name.
        expected = request_signature(token, query, body or None, timestamp_ms, secret)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return _BAD_SIGNATURE
        if (skew := self.server.state.max_skew) is not None and abs(
            timestamp_ms / 1000 - self.server.state.now()
        ) > skew:
            return _STALE_TIMESTAMP
        self.server.state.note_signature(signature)
        return None

    def _operate(self, operation: str, user_id: str, query: Mapping[str, str], body: Any) -> Any:
        state = self.server.state
        if operation == "flowInstances.cancel":
            return state.api_cancel(user_id, body)
        if operation == "flowInstances.get":
            return state.api_get_instance(user_id, query)
        if operation == "flowInstances.search":
            return state.api_search(user_id, body)
        if operation == "flows.get":
            return state.api_get_flow(user_id, query)
        if operation == "time.getCurrentTime":
            return state.now_ms()
        return state.api_trigger(user_id, operation.split(".", 1)[1], body)

    def _finish(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        parsed: Any,
        reply: _Reply,
        *,
        fault: Fault | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        operation, status, payload = reply
        code = payload.get("code", payload.get("status"))
        self._record(
            method, path, query, parsed, operation, code if isinstance(code, int) else None, status, fault
        )
        if fault is not None and fault.kind == "reset_after":
            self._reset()
            return
        data = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
        if fault is not None and fault.kind == "truncated":
            data = data[: len(data) // 2]
        if latency := self.server.state.latency:
            time.sleep(latency)  # the emulated distance to the gateway, not synchronisation
        if fault is not None and fault.kind == "latency":
            time.sleep(fault.seconds)
        self.send_response(status)
        if raw is None:
            content_type = "application/json;charset=UTF-8"
        elif raw.startswith(b"<"):
            content_type = "text/html"
        else:
            content_type = "text/plain"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if fault is not None and fault.kind == "slow_body":
            self.wfile.flush()
            time.sleep(fault.seconds)  # the injected slowness itself
        with contextlib.suppress(OSError):  # a client that timed out may be gone
            self.wfile.write(data)

    def _record(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        parsed: Any,
        operation: str | None,
        code: int | None,
        status: int,
        fault: Fault | None,
    ) -> None:
        recorded_body = None
        if isinstance(parsed, dict):
            recorded_body = dict(parsed)
            if "accessToken" in recorded_body:
                # A refresh body carries a live token; the log must never hold one.
                recorded_body["accessToken"] = "***"
        self.server.state.record(
            RecordedRequest(
                method=method,
                path=path,
                query=query,
                operation=operation,
                body=recorded_body,
                code=code,
                http_status=status,
                connection_id=self.connection_id,
                peer_port=int(self.client_address[1]),
                fault=fault.kind if fault is not None else None,
            )
        )


def _operation_of(method: str, path: str, query: dict[str, str]) -> str | None:
    if path.startswith(TOKEN_PREFIX) and method == "POST":
        return f"token.{path[len(TOKEN_PREFIX) :]}"
    if path.startswith(BATCH_PREFIX):
        resource = path[len(BATCH_PREFIX) :]
        if query.get("action") in BATCH_ROUTES.get(resource, {}).get(method, ()):
            return f"{resource}.{query['action']}"
    return None


def _token_envelope(status: int, msg: str, data: dict[str, Any] | None) -> dict[str, Any]:
    return {"status": status, "msg": msg, "business": TOKEN_BUSINESS, "data": data}


def _envelope(code: int, msg: str, request_id: str | None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": None, "requestId": request_id or uuid.uuid4().hex}


def load_seed_file(seed: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """Return a seed document, reading it from a JSON file when given a path.

    :param seed: the seed dict itself, or the path of a JSON file holding it.
    """
    if isinstance(seed, dict):
        return seed
    document = json.loads(Path(seed).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"seed file {seed} must hold a JSON object")
    return document


class EnOSEmulator:
    """Run an emulated EnOS gateway + Batch Processing Service v2.1 on a loopback HTTP port.

    Settings precedence: the seed's ``settings`` apply first; a ``cancel_final`` or ``token_ttl``
    keyword that differs from its default then overrides them. Both stay settable at run time on
    ``state``.
    """

    def __init__(
        self,
        seed: dict[str, Any] | str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cancel_final: str = "error",
        token_ttl: float = 7200,
        clock: Callable[[], float] | str | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """Build the emulator and load its seed (nothing listens until :meth:`start`).

        :param seed: a seed dict (see :class:`~airflow_enos_provider.emulator.state.Seed`), the
            path of a JSON file holding one, or None for an empty tenant.
        :param host: the address to listen on.
        :param port: the port to listen on; 0 picks a free one.
        :param cancel_final: ``"error"`` or ``"success"``: the reply to cancelling a finished instance.
        :param token_ttl: the lifetime of issued access tokens, in seconds.
        :param clock: a callable returning epoch seconds, ``"manual"`` for a clock that only moves on
            :meth:`EmulatorState.advance`, or None for wall time.
        :param tls: ``(certificate file, key file)`` to serve HTTPS instead of HTTP.
        """
        self.tls = tls
        self.state = EmulatorState(clock=clock)
        if seed is not None:
            self.state.load_seed(load_seed_file(seed))
        if cancel_final != "error":
            self.state.cancel_final = cancel_final
        if token_ttl != 7200:
            self.state.token_ttl = token_ttl
        self.host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43121`` (only once started)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        host = str(host)
        scheme = "https" if self.tls else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    @property
    def port(self) -> int:
        """The port listened on (the requested one until started)."""
        return int(self._server.server_address[1]) if self._server is not None else self._port

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    def start(self) -> EnOSEmulator:
        """Bind the port and serve in a daemon thread; return self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already started")
        server = _Server((self.host, self._port), self.state)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="enos-emulator", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        logger.debug("EnOS emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and free the port (no-op when not started)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        server.close_open_connections()
        if thread is not None:
            thread.join()

    def __enter__(self) -> EnOSEmulator:
        """Start the emulator for a ``with`` block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the emulator at the end of a ``with`` block."""
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"<EnOSEmulator {where}>"


def connection_json(
    url: str, *, access_key: str, secret_key: str, org_id: object, user_id: object, **extra: object
) -> str:
    """Return an ``AIRFLOW_CONN_<ID>`` value (JSON) for an ``enos`` connection to ``url``.

    :param url: the gateway URL, e.g. an emulator's :attr:`EnOSEmulator.url`.
    :param access_key: the application's access key.
    :param secret_key: the application's secret key.
    :param org_id: the ``org_id`` extra.
    :param user_id: the ``user_id`` extra.
    :param extra: more extras, e.g. ``verify`` or ``timeout``.
    """
    return json.dumps(
        {
            "conn_type": "enos",
            "host": url,
            "login": access_key,
            "password": secret_key,
            "extra": {"org_id": org_id, "user_id": user_id, **extra},
        }
    )
