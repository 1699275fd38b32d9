"""Emulator capacity: how many requests per second the emulator answers, measured with a minimal client.

Worker: ``python bench/capacity.py EMULATOR_URL CONTROL_URL CONNECTIONS SECONDS``. The client is
as light as a client can be, so that the emulator is what saturates: one signed ``flowInstances.get``
request, serialised once to bytes, sent again and again over CONNECTIONS keep-alive connections from
one asyncio loop (raw streams, no HTTP library). Prints the throughput, and the emulator's own CPU
per request (its process CPU time / requests served: the emulator is one Python process, so
1 / CPU-per-request is its ceiling on one core).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import quote, urlencode, urlsplit

import common


async def _token(host: str, port: int) -> str:
    body = json.dumps(common.token_body()).encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /apim-token-service/v2.0/token/get HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    reply = await _read_reply(reader)
    writer.close()
    return json.loads(reply)["data"]["accessToken"]


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


async def run(url: str, control_url: str, connections: int, seconds: float) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    token = await _token(host, port)
    query = [
        ("action", "get"),
        ("userId", common.USER_ID),
        ("orgId", common.ORG_ID),
        ("flowInstId", common.instance_ids(1)[0]),
    ]
    signed = "".join(
        f"{name}: {value}\r\n" for name, value in common.signed_headers(token, query, None).items()
    )
    request = (
        f"GET /batch-processing-service/v2.1/flowInstances?{urlencode(query, quote_via=quote)} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n{signed}\r\n"
    ).encode()
    done = 0
    stop_at = 0.0

    async def client() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < stop_at:
            writer.write(request)
            reply = await _read_reply(reader)
            if b'"code": 0' not in reply[:20] and b'"code":0' not in reply[:20]:
                raise RuntimeError(f"the emulator refused the load request: {reply[:200]!r}")
            done += 1
        writer.close()

    before = common.control(control_url, "stats")
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    after = common.control(control_url, "stats")
    served = after["requests"] - before["requests"]
    emulator_cpu = after["cpu"] - before["cpu"]
    return {
        "connections": connections,
        "requests": done,
        "seconds": elapsed,
        "throughput_rps": done / elapsed,
        "emulator_cpu_per_request_ms": emulator_cpu / max(served, 1) * 1000,
        "emulator_cpu_ceiling_rps": max(served, 1) / emulator_cpu if emulator_cpu else None,
    }


def main() -> None:
    url, control_url, connections, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    common.emit(asyncio.run(run(url, control_url, connections, seconds)))


if __name__ == "__main__":
    main()
