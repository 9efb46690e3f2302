"""The load: N concurrent conversations posting activities as a channel does.

Each worker owns one conversation (and one user) and posts its next activity as
soon as the bot answered the previous one; the bot sends all its replies
before it answers, so the POST's latency is the turn's latency. One pooled
keep-alive aiohttp session drives everything, so the driver costs little.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

import aiohttp

#: (worker, turn number) -> (bot URL index, conversation id, user id, activity fields)
Plan = Callable[[int, int], tuple[int, str, str, Dict[str, Any]]]


@dataclass
class LoadResult:
    turns: int
    seconds: float
    latencies: List[float] = field(repr=False)
    errors: int
    statuses: Dict[int, int]
    #: every turn started in the window (all of them finished): the bot's counters cover these
    started: int

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def activity(
    service_url: str, conversation_id: str, user_id: str, **fields: Any
) -> Dict[str, Any]:
    """An Emulator-style activity, stamped now as a channel stamps it."""
    return {
        "type": "message",
        "id": uuid.uuid4().hex,
        "channelId": "emulator",
        "serviceUrl": service_url,
        "from": {"id": user_id, "name": "User", "role": "user"},
        "recipient": {"id": "bot", "name": "Bot", "role": "bot"},
        "conversation": {"id": conversation_id},
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
        "locale": "en-US",
        **fields,
    }


class Driver:
    def __init__(self, bot_urls: Sequence[str], service_url: str,
                 headers: Optional[Dict[str, str]] = None) -> None:
        """``headers`` go on every activity posted (an Authorization header, say)."""
        self.bot_urls = list(bot_urls)
        self.service_url = service_url
        self.headers = dict(headers or {})
        self._session: Optional[aiohttp.ClientSession] = None

    async def __aenter__(self) -> "Driver":
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def post(self, bot_index: int, body: Dict[str, Any]) -> int:
        assert self._session is not None
        url = f"{self.bot_urls[bot_index]}/api/messages"
        async with self._session.post(url, json=body, headers=self.headers) as response:
            await response.read()
            return response.status

    async def say(self, conversation_id: str, user_id: str, text: str, bot_index: int = 0) -> int:
        return await self.post(
            bot_index, activity(self.service_url, conversation_id, user_id, text=text)
        )

    async def get_json(self, url: str) -> Dict[str, Any]:
        assert self._session is not None
        async with self._session.get(url) as response:
            return await response.json()

    async def post_empty(self, url: str) -> None:
        assert self._session is not None
        async with self._session.post(url) as response:
            await response.read()

    async def run(
        self,
        plan: Plan,
        workers: int,
        warmup: float,
        duration: float,
        on_window_start: Callable[[], Awaitable[Any]],
        rate: Optional[float] = None,
    ) -> LoadResult:
        """Warm up, let the bot go idle, call ``on_window_start`` (reset counters),
        then load it again for ``duration`` seconds: as fast as it answers, or at
        ``rate`` turns/s in total.

        Turns/s and latencies count the turns that finished inside the window;
        the turns still in flight at its end are awaited, so that the bot's
        counters (read right after) cover exactly the turns started in it."""
        await self._load(plan, workers, warmup, 0, rate)
        await on_window_start()
        return await self._load(plan, workers, duration, 1_000_000, rate)

    async def _load(
        self, plan: Plan, workers: int, duration: float, turn_offset: int, rate: Optional[float]
    ) -> LoadResult:
        latencies: List[float] = []
        statuses: Dict[int, int] = {}
        started_turns = 0
        start = time.perf_counter()
        end = start + duration
        interval = workers / rate if rate else 0.0

        async def worker(number: int) -> None:
            nonlocal started_turns
            turn = turn_offset
            next_start = start + interval * number / workers
            while True:
                if interval:
                    await asyncio.sleep(max(0.0, next_start - time.perf_counter()))
                    next_start += interval
                if time.perf_counter() >= end:
                    return
                bot_index, conversation_id, user_id, fields = plan(number, turn)
                turn += 1
                started_turns += 1
                body = activity(self.service_url, conversation_id, user_id, **fields)
                began = time.perf_counter()
                try:
                    status = await self.post(bot_index, body)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    status = 0
                finished = time.perf_counter()
                statuses[status] = statuses.get(status, 0) + 1
                if status in (200, 201) and finished <= end:
                    latencies.append(finished - began)

        await asyncio.gather(*(worker(n) for n in range(workers)))
        errors = sum(count for status, count in statuses.items() if status not in (200, 201))
        return LoadResult(len(latencies), duration, latencies, errors, statuses, started_turns)


def echo_plan(run_id: str) -> Plan:
    """Every worker talks in its own conversation, as its own (named) user."""

    def plan(worker: int, turn: int) -> tuple[int, str, str, Dict[str, Any]]:
        return 0, f"{run_id}-c{worker}", f"{run_id}-u{worker}", {"text": f"hello {turn}"}

    return plan


def shared_plan(run_id: str, shared_fraction: float, bots: int, seed: int = 8) -> Plan:
    """Pizza ``add`` turns; ``shared_fraction`` of them go to one conversation all
    workers share. Turns alternate between the bot processes."""
    chooser = random.Random(seed)

    def plan(worker: int, turn: int) -> tuple[int, str, str, Dict[str, Any]]:
        shared = chooser.random() < shared_fraction
        conversation = f"{run_id}-shared" if shared else f"{run_id}-c{worker}"
        return (worker + turn) % bots, conversation, f"{run_id}-u{worker}", {
            "text": f"add t{worker}.{turn}"
        }

    return plan
