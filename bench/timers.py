"""Where one turn's CPU goes: app.py's APP in this process, turns one after another, and
the thread CPU time spent inside each step (its callees included).

Sampling profilers lose callers across awaits and cProfile inflates small functions; with
one turn at a time, the CPU used between a step's start and end is that step's alone.

    .venv/bin/python -m bench.timers floor|bot [--turns 2000]   # STORAGE etc. from the env
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

from aiohttp import web

from bench.driver import Driver
from bench.instrument import process_cpu
from bench.run import BOT_ENV, Channel
from state_engine.testing.live_bot import free_port

WARMUP_TURNS = 300


@dataclass
class Timers:
    """Thread CPU seconds and calls per step. Calls of a step that nest or overlap (one
    re-entered from itself, or several gathered) count once, from the first one's start
    to the last one's end."""

    seconds: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)
    _depth: Counter = field(default_factory=Counter)
    _started: Dict[str, float] = field(default_factory=dict)

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(function):
            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                self._enter(name)
                try:
                    return await function(*args, **kwargs)
                finally:
                    self._leave(name)
            return timed_async

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._enter(name)
            try:
                return function(*args, **kwargs)
            finally:
                self._leave(name)
        return timed

    def _enter(self, name: str) -> None:
        if not self._depth[name]:
            self._started[name] = time.thread_time()
        self._depth[name] += 1

    def _leave(self, name: str) -> None:
        self._depth[name] -= 1
        if not self._depth[name]:
            self.seconds[name] += time.thread_time() - self._started[name]
            self.calls[name] += 1

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def instrument(timers: Timers) -> None:
    """Wrap the steps of a turn, from the request handler down to the reply's HTTP call
    (before app.py is imported, so that the handler it builds is wrapped too)."""
    from botbuilder.core import TurnContext
    from botbuilder.core.cloud_adapter_base import CloudAdapterBase

    from bots import StateBot
    from state_engine.hosting import messages, routes
    from state_engine.hosting.connectors.replies import PooledConversations
    from state_engine.stores.state_storage import StateStorage
    from state_engine.turns.runner import TurnRunner
    from state_engine.turns.turn_storage import TurnScopedStorage

    steps: List[Tuple[Any, str, str]] = [
        (messages, "read_body", "request: read the body"),
        (messages, "parse_json", "request: parse the JSON"),
        (messages, "parse_activity", "request: check and build the Activity"),
        (messages, "authenticate", "request: authenticate"),
        (CloudAdapterBase, "process_activity", "SDK: CloudAdapter.process_activity"),
        (TurnRunner, "on_turn", "runner: the whole turn"),
        (TurnScopedStorage, "prefetch", "state: the read round"),
        (StateBot, "on_turn", "bot: on_turn (replies held)"),
        (StateStorage, "commit", "state: the save"),
        (TurnContext, "send_activities", "SDK: TurnContext.send_activities"),
        (PooledConversations, "_request", "replies: JSON"),
        (PooledConversations, "_attempts", "replies: HTTP"),
    ]
    for owner, attribute, name in steps:
        setattr(owner, attribute, timers.wrap(name, getattr(owner, attribute)))
    make_handler = routes.make_messages_handler
    routes.make_messages_handler = lambda *args, **kwargs: timers.wrap(
        "request: the handler, in all", make_handler(*args, **kwargs)
    )


#: Derived lines: a step's own share, what its named callees do not account for.
DERIVED: List[Tuple[str, str, Tuple[str, ...]]] = [
    ("aiohttp server (process CPU outside the handler)", "process",
     ("request: the handler, in all",)),
    ("SDK turn machinery (outside the runner)", "SDK: CloudAdapter.process_activity",
     ("runner: the whole turn",)),
    ("runner's own work", "runner: the whole turn", (
        "state: the read round", "bot: on_turn (replies held)", "state: the save",
        "SDK: TurnContext.send_activities")),
    ("SDK send path (outside the replies' JSON and HTTP)", "SDK: TurnContext.send_activities", (
        "replies: JSON", "replies: HTTP")),
]


def report(timers: Timers, process_seconds: float, turns: int, label: str) -> str:
    per_turn: Dict[str, float] = {name: s / turns * 1e6 for name, s in timers.seconds.items()}
    per_turn["process"] = process_seconds / turns * 1e6
    title = f"{label}: {turns} turns one after another, thread CPU µs per turn (callees included)"
    lines = [title, ""]
    lines += ["| step | µs/turn | calls/turn |", "|---|---:|---:|"]
    lines.append(f"| the bot process, in all | {per_turn['process']:.0f} | – |")
    for name, seconds in timers.seconds.most_common():
        lines.append(f"| {name} | {per_turn[name]:.0f} | {timers.calls[name] / turns:.1f} |")
    lines += ["", "| derived | µs/turn |", "|---|---:|"]
    for name, whole, parts in DERIVED:
        if whole in per_turn and all(part in per_turn for part in parts):
            lines.append(f"| {name} | {per_turn[whole] - sum(per_turn[p] for p in parts):.0f} |")
    return "\n".join(lines)


async def _measure(target: str, turns: int) -> str:
    timers = Timers()
    if target == "floor":
        from bench.serve import cut_to_replies

        cut_to_replies()
    instrument(timers)
    import app

    runner = web.AppRunner(app.APP, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with Channel() as channel:
            async def drive(count: int) -> None:
                command = [sys.executable, "-m", "bench.timers", "--drive",
                           f"http://127.0.0.1:{port}", channel.url, str(count)]
                process = await asyncio.create_subprocess_exec(*command)
                if await process.wait():
                    raise RuntimeError(f"the driver failed: {command}")

            await drive(WARMUP_TURNS)
            timers.clear()
            started = process_cpu()
            await drive(turns)
            process_seconds = process_cpu() - started
    finally:
        await runner.cleanup()
    return report(timers, process_seconds, turns, f"{target} ({os.environ['STORAGE']})")


async def _drive(bot_url: str, service_url: str, turns: int) -> None:
    """One conversation, one turn at a time, in a process of its own."""
    async with Driver([bot_url], service_url) as driver:
        for turn in range(turns):
            status = await driver.say("timers-c", "timers-u", f"hello {turn}")
            if status not in (200, 201):
                raise SystemExit(f"turn {turn} answered {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", choices=["floor", "bot"])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--drive", nargs=3, metavar=("BOT_URL", "SERVICE_URL", "TURNS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        bot_url, service_url, turns = args.drive
        asyncio.run(_drive(bot_url, service_url, int(turns)))
        return
    if args.target is None:
        parser.error("name a target: floor or bot")
    os.environ.update(BOT_ENV)
    os.environ.setdefault("STORAGE", "sqlite")
    workdir = tempfile.mkdtemp(prefix="bench-timers-")
    os.environ.setdefault("SQLITE_PATH", os.path.join(workdir, "state.sqlite3"))
    print(asyncio.run(_measure(args.target, args.turns)))


if __name__ == "__main__":
    main()
