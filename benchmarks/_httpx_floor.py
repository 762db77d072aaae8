"""
The transport's own floor: plain ``httpx.AsyncClient`` GETs of one job against the fixed-response server.

No trigger, no hook, no parsing: just the HTTP client, at several levels of concurrency (requests in flight
= pool connections, as the hook configures its pool), on httpx's default transport (httpcore) or on the
hook's default async client (``--transport aiohttp``: aiohttp behind httpx, as the hook builds it). Together with the no-HTTP
trigger row, it splits the trigger's CPU per poll into what the trigger costs and what the HTTP client
costs, and shows how httpcore's cost per request grows with the number of pooled connections. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx


async def _per_request_cpu(base: str, in_flight: int, n: int, transport_name: str) -> float:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    client: httpx.AsyncClient
    if transport_name == "aiohttp":
        from airflow_provider_together._transport.aio import AiohttpClient, AiohttpTransport
        from airflow_provider_together._transport.client import ssl_context

        transport = AiohttpTransport(ssl_context=ssl_context(), max_connections=in_flight)
        client = AiohttpClient(transport, base_url=base)
    else:
        client = httpx.AsyncClient(base_url=base, limits=limits)
    async with client:
        gate = asyncio.Semaphore(in_flight)

        async def one(i: int) -> bytes:
            async with gate:
                return (await client.get(f"/fine-tunes/floor{in_flight}-r999999-{i}")).content

        await asyncio.gather(*(one(i) for i in range(min(n, 200))))  # open the connections first
        cpu0 = time.process_time()
        await asyncio.gather(*(one(i) for i in range(n)))
        return (time.process_time() - cpu0) / n


async def _main(args: argparse.Namespace) -> dict[str, float]:
    return {str(k): await _per_request_cpu(args.base_url, k, args.n, args.transport) for k in args.in_flight}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True, help="the fixed server, with /v1")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--transport", choices=["httpx", "aiohttp"], default="httpx")
    args = parser.parse_args()
    print(json.dumps({"cpu_per_request_s": asyncio.run(_main(args))}), flush=True)


if __name__ == "__main__":
    main()
