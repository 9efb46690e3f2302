"""How long the event loop was blocked while some work ran."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, List, Tuple


async def max_loop_lag(work: Awaitable[object], tick: float = 0.002) -> Tuple[float, float]:
    """Run ``work`` while a probe sleeps ``tick`` over and over; return the
    longest the probe overslept (how long the loop was blocked) and work's duration."""
    lags: List[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(tick)
            lags.append(time.perf_counter() - started - tick)

    prober = asyncio.create_task(probe())
    await asyncio.sleep(tick * 3)
    started = time.perf_counter()
    try:
        await work
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        await prober
    return max(lags), elapsed
