"""One simulated gateway node for the multi-process quota tests: paces `take` calls at a given
rate against one quota for a fixed wall-clock window and prints a JSON summary on stdout.

Usage: python -m tests.quota.node_worker URL NODE_ID RATE START DURATION KEY REQUESTS PER [WARMUP]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from fastgate.quota.redis_backend import RedisQuota


async def main(argv: list[str]) -> dict:
    url, node_id, rate, start, duration, key, requests, per = argv[:8]
    warmup = float(argv[8]) if len(argv) > 8 else 0.0
    rate, start, duration = float(rate), float(start), float(duration)
    requests, per = int(requests), float(per)
    b = RedisQuota((url,), 1.0, "deny", node_id)
    await b.start()
    end = start + duration
    stats = {"node": node_id, "takes": 0, "admitted": 0, "sources": {}, "last": start}
    mark: dict = {}
    conc = 4

    async def pace(i: int) -> None:
        r = rate / conc
        n = 0
        while True:
            now = time.time()
            if now >= end:
                return
            target = int((now - start) * r)
            while n < target:
                d = await b.take(key, requests, per)
                n += 1
                stats["takes"] += 1
                stats["admitted"] += d.allowed
                stats["sources"][d.source] = stats["sources"].get(d.source, 0) + 1
                stats["last"] = max(stats["last"], time.time())
            await asyncio.sleep(0.002)

    async def snapshot() -> None:
        await asyncio.sleep(max(0.0, start + warmup - time.time()))
        mark.update(takes=stats["takes"], rt=b.round_trips)

    await asyncio.sleep(max(0.0, start - time.time()))
    await asyncio.gather(snapshot(), *(pace(i) for i in range(conc)))
    stats["round_trips"] = b.round_trips
    stats["steady_takes"] = stats["takes"] - mark["takes"]
    stats["steady_rt"] = b.round_trips - mark["rt"]
    stats["lease_dropped"] = b.leases.dropped
    stats["lease_outstanding"] = b.leases.outstanding()
    stats["live_nodes"] = b.live_nodes
    await b.close()
    return stats


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
