"""Row 5 context: the CPU one bare async HTTP request costs, per client library, 1,000 at once.

Worker: ``python bench/transport_floor.py EMULATOR_URL COUNT ROUNDS``. Sends COUNT signed
``flowInstances.get`` requests at once from one event loop, with no hook, trigger or logging around
them, over a pool of 64 connections, through ``httpx`` (the hook's async transport) and ``aiohttp``
(the official HTTP provider's), alternating. This is the floor under a trigger's CPU per poll, and
COUNT x floor is the least time one event loop needs to send COUNT polls that fall due together.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import common


def _signed(token: str, flow_inst_id: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    query = [
        ("action", "get"),
        ("userId", common.USER_ID),
        ("orgId", common.ORG_ID),
        ("flowInstId", flow_inst_id),
    ]
    return query, common.signed_headers(token, query, None)


async def _token(url: str) -> str:
    import httpx

    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{url}/apim-token-service/v2.0/token/get", json=common.token_body())
    return reply.json()["data"]["accessToken"]


async def run(url: str, count: int, rounds: int) -> dict[str, Any]:
    import aiohttp
    import httpx

    token = await _token(url)
    ids = common.instance_ids(count)
    target = f"{url}/batch-processing-service/v2.1/flowInstances"
    httpx_client = httpx.AsyncClient(limits=httpx.Limits(max_connections=64), timeout=60)
    aiohttp_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=60)
    )

    async def with_httpx(flow_inst_id: str) -> Any:
        query, headers = _signed(token, flow_inst_id)
        reply = await httpx_client.get(target, params=query, headers=headers)
        return reply.json()["code"]

    async def with_aiohttp(flow_inst_id: str) -> Any:
        query, headers = _signed(token, flow_inst_id)
        async with aiohttp_session.get(target, params=query, headers=headers) as reply:
            return (await reply.json(content_type=None))["code"]

    results: dict[str, list[float]] = {"httpx": [], "aiohttp": []}
    try:
        for number in range(rounds + 1):  # round 0 warms both pools up and is not kept
            order = [("httpx", with_httpx), ("aiohttp", with_aiohttp)]
            for name, send in order if number % 2 else order[::-1]:
                cpu = time.process_time()
                codes = await asyncio.gather(*(send(i) for i in ids))
                if set(codes) != {0}:
                    raise RuntimeError(f"{name}: unexpected replies {set(codes)}")
                if number:
                    results[name].append((time.process_time() - cpu) / count * 1000)
    finally:
        await httpx_client.aclose()
        await aiohttp_session.close()
    return {"count": count, "cpu_per_request_ms": results}


def main() -> None:
    url, count, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    common.emit(asyncio.run(run(url, count, rounds)))


if __name__ == "__main__":
    main()
