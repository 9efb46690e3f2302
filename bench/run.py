"""``make bench``: this bot against a bare aiohttp handler, over HTTP, in one run.

Every target is a real process on 127.0.0.1: the bare handler (the limit on this
machine), the docs' default wiring, and this bot on every backend of
``storage.factory.BACKENDS`` (cloud stores on the emulators of
tests/emulators.py). A channel process (bench/channel.py) takes the replies.
This process drives 20 concurrent conversations of echo turns from named users
(4 replies each).

All targets start first and are then driven in turn, for several short rounds,
so that whatever else the machine is doing hits them alike; turns/s is the
median round, and a ratio between two targets the median of their round-by-round
ratios. Latency and the probes inside each process (bench/instrument.py:
storage reads/writes per turn, event-loop lag) cover every round. Loop lag is
reported at full load and at half load (paced at half the measured turns/s),
where it shows blocking rather than CPU saturation; both are the median round.

Then a concurrency run: pizza ``add`` turns, 0%, 50% and 100% of them on one
shared conversation, on two bot processes sharing one SQLite file.

    .venv/bin/python -m bench.run [--rounds 5] [--duration 3] [--only bare4,sqlite]

The tables are printed and saved to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.driver import Driver, LoadResult, activity, echo_plan, shared_plan
from state_engine.testing.live_bot import PROJECT_ROOT, BotProcess, free_port, http_get

RESULTS = PROJECT_ROOT / "bench" / "results"
WORKERS = 20
ECHO_REPLIES = 4
SCOPES = ("conversation", "user", "private", "log")
BOT_ENV = {"PYTHONWARNINGS": "ignore"}
PACED_SECONDS = 2.0


@dataclass
class Target:
    key: str
    label: str
    command: List[str]
    env: Dict[str, str]
    replies: int = ECHO_REPLIES
    has_storage: bool = True


@dataclass
class Result:
    """Everything measured for one target, over all its rounds."""

    target: Target
    rounds: List[LoadResult] = field(default_factory=list)
    storage: Dict[str, int] = field(default_factory=dict)
    lag_p99_full: List[float] = field(default_factory=list)
    lag_p99_half: List[float] = field(default_factory=list)
    replies_seen: int = 0
    quiet: Dict[str, float] = field(default_factory=dict)

    @property
    def turns_per_second(self) -> float:
        return statistics.median(r.turns_per_second for r in self.rounds)

    @property
    def started(self) -> int:
        return sum(r.started for r in self.rounds)

    def latency_ms(self, q: float) -> float:
        pooled = sorted(x for r in self.rounds for x in r.latencies)
        return pooled[min(len(pooled) - 1, int(q * len(pooled)))] * 1000 if pooled else float("nan")

    def per_turn(self, name: str) -> float:
        return self.storage.get(name, 0) / max(1, self.started)

    @property
    def errors(self) -> Dict[int, int]:
        bad: Dict[int, int] = {}
        for r in self.rounds:
            for status, count in r.statuses.items():
                if status not in (200, 201):
                    bad[status] = bad.get(status, 0) + count
        return bad


class Channel:
    """bench/channel.py in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "Channel":
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.channel", "--port", str(self.port)], cwd=PROJECT_ROOT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http_get(f"{self.url}/stats", timeout=1)[0] == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("the bench channel did not start")

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(10)


class Emulators:
    """Starts Azurite / the Cosmos DB emulator (tests/emulators.py) when a backend needs one."""

    def __init__(self, workdir: Path, stack: contextlib.ExitStack) -> None:
        self._workdir = workdir
        self._stack = stack
        self._running: Dict[str, Any] = {}

    def _get(self, name: str) -> Any:
        from state_engine.testing import emulators

        if name not in self._running:
            start = emulators.start_azurite if name == "azurite" else emulators.start_cosmos
            emulator = start(self._workdir / name)
            self._stack.callback(emulator.stop)
            self._running[name] = emulator
        return self._running[name]

    def env(self, backend: str, sqlite_path: Path) -> Dict[str, str]:
        from state_engine.testing.emulators import backend_env

        return backend_env(
            backend,
            azurite=self._get("azurite") if backend in ("blob", "table") else None,
            cosmos=self._get("cosmos") if backend == "cosmos" else None,
            sqlite_path=sqlite_path,
        )


def targets(only: List[str]) -> List[Target]:
    from state_engine.stores.registry import BACKENDS

    python = sys.executable
    bare = [python, "-m", "bench.bare_handler"]
    found = [
        Target("bare4", "bare aiohttp handler, 4 replies", bare, {"BENCH_REPLIES": "4"}, has_storage=False),
        Target("bare3", "bare aiohttp handler, 3 replies", bare, {"BENCH_REPLIES": "3"}, 3, False),
        Target("docs", "docs' default wiring, MemoryStorage", [python, "-m", "bench.serve", "docs"], {}),
    ]
    for backend in BACKENDS:
        found.append(Target(backend, f"this bot, {backend}", [python, "-m", "bench.serve", "bot"], {"STORAGE": backend}))
    return [t for t in found if not only or t.key in only]


async def _prepare(driver: Driver, run_id: str) -> None:
    """Each worker's user says hi and gives a name, so later turns are 4-reply echoes."""

    async def one(worker: int) -> None:
        for text in ("hi", f"Ada {worker}"):
            status = await driver.say(f"{run_id}-c{worker}", f"{run_id}-u{worker}", text)
            if status not in (200, 201):
                raise RuntimeError(f"a set-up turn answered {status}")

    await asyncio.gather(*(one(n) for n in range(WORKERS)))


async def drive(bots: Dict[str, BotProcess], results: Dict[str, Result], channel: Channel,
                rounds: int, warmup: float, duration: float) -> None:
    run_ids = {key: uuid.uuid4().hex[:8] for key in bots}
    drivers = {key: Driver([bot.url], channel.url) for key, bot in bots.items()}
    async with contextlib.AsyncExitStack() as stack:
        for driver in drivers.values():
            await stack.enter_async_context(driver)
        for key, driver in drivers.items():
            await _prepare(driver, run_ids[key])

        for number in range(rounds):
            for key, driver in drivers.items():
                print(f"-- round {number + 1}/{rounds}: {results[key].target.label}", file=sys.stderr, flush=True)
                bot, result = bots[key], results[key]

                async def reset() -> None:
                    await driver.post_empty(f"{bot.url}/bench/reset")
                    await driver.post_empty(f"{channel.url}/reset")

                load = await driver.run(echo_plan(run_ids[key]), WORKERS, warmup, duration, reset)
                stats = await driver.get_json(f"{bot.url}/bench/stats")
                result.rounds.append(load)
                for name, count in stats["storage"].items():
                    result.storage[name] = result.storage.get(name, 0) + count
                result.lag_p99_full.append(stats["loop_lag"]["p99_ms"])
                result.replies_seen += (await driver.get_json(f"{channel.url}/stats"))["replies"]

                # The same turns paced at half this round's rate: the loop now has
                # spare time, so lag here is blocking, not a saturated CPU.
                await driver.run(echo_plan(run_ids[key]), WORKERS, 0.5, PACED_SECONDS, reset,
                                 rate=load.turns_per_second / 2)
                paced = await driver.get_json(f"{bot.url}/bench/stats")
                result.lag_p99_half.append(paced["loop_lag"]["p99_ms"])

        for key, driver in drivers.items():
            bot, result = bots[key], results[key]
            await driver.post_empty(f"{bot.url}/bench/reset")
            # A turn that changes nothing: a conversationUpdate in an already-welcomed
            # conversation reads state and sends the welcome; it must write nothing.
            for worker in range(WORKERS):
                await driver.post(0, activity(
                    channel.url, f"{run_ids[key]}-c{worker}", f"{run_ids[key]}-u{worker}",
                    type="conversationUpdate", membersAdded=[{"id": f"{run_ids[key]}-u{worker}"}],
                ))
            quiet = (await driver.get_json(f"{bot.url}/bench/stats"))["storage"]
            result.quiet = {
                "reads": quiet.get("read_keys", 0) / WORKERS,
                "writes": quiet.get("write_keys", 0) / WORKERS,
            }


@dataclass
class ConcurrencyRow:
    shared_fraction: float
    load: LoadResult
    conflicts: int
    gave_up: int


async def _drive_shared(bots: List[BotProcess], channel: Channel, fraction: float,
                        warmup: float, duration: float) -> ConcurrencyRow:
    async with Driver([b.url for b in bots], channel.url) as driver:

        async def reset() -> None:
            for bot in bots:
                await driver.post_empty(f"{bot.url}/bench/reset")

        plan = shared_plan(uuid.uuid4().hex[:8], fraction, len(bots))
        load = await driver.run(plan, WORKERS, warmup, duration, reset)
        stats = [await driver.get_json(f"{bot.url}/bench/stats") for bot in bots]
    return ConcurrencyRow(fraction, load, sum(s["conflicts"] for s in stats), sum(s["gave_up"] for s in stats))


def measure_concurrency(channel: Channel, tmp: Path, warmup: float, duration: float) -> List[ConcurrencyRow]:
    rows = []
    command = [sys.executable, "-m", "bench.serve", "bot"]
    for fraction in (0.0, 0.5, 1.0):
        print(f"-- concurrency: {fraction:.0%} on one conversation", file=sys.stderr, flush=True)
        env = {**BOT_ENV, "STORAGE": "sqlite", "SQLITE_PATH": str(tmp / f"shared-{fraction}.sqlite3")}
        with BotProcess(env, command=command, log_path=tmp / f"shared-{fraction}-a.log") as first, \
                BotProcess(env, command=command, log_path=tmp / f"shared-{fraction}-b.log") as second:
            rows.append(asyncio.run(_drive_shared([first, second], channel, fraction, warmup, duration)))
    return rows


def paired_ratio(result: Result, baseline: Result) -> float:
    """The median of round-by-round ratios. Round n of every target runs back to
    back, so pairing them cancels what the shared machine was doing at the time."""
    return statistics.median(
        a.turns_per_second / b.turns_per_second for a, b in zip(result.rounds, baseline.rounds)
    )


def render(results: List[Result], concurrency: List[ConcurrencyRow], args: argparse.Namespace) -> str:
    by_key = {r.target.key: r for r in results}
    bare = by_key.get("bare4")
    lines = [
        f"# Benchmark, {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}. {WORKERS} concurrent "
        f"conversations of echo turns from named users ({ECHO_REPLIES} replies per turn; the "
        "3-reply bare row is the issue's baseline). Driver, channel, emulators and bot are "
        f"separate processes on this machine. {args.rounds} rounds of {args.duration:.0f} s per "
        "target, interleaved; turns/s is the median round, a ratio the median of the "
        "round-by-round ratios, latencies pool all rounds.",
        "",
        "| target | turns/s | × bare | p50 ms | p99 ms | reads/turn | writes/turn "
        "| loop lag p99 ms, full / half load | replies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = paired_ratio(r, bare) if bare else float("nan")
        expected = r.started * r.target.replies
        replies = "all" if r.replies_seen >= expected else f"{r.replies_seen}/{expected}"
        if r.errors:
            replies += f"; failed turns {r.errors}"
        storage = (f"{r.per_turn('read_keys'):.2f} | {r.per_turn('write_keys'):.2f}"
                   if r.target.has_storage else "– | –")
        lines.append(
            f"| {r.target.label} | {r.turns_per_second:,.0f} | {ratio:.2f}× | {r.latency_ms(0.5):.1f} | "
            f"{r.latency_ms(0.99):.1f} | {storage} | {statistics.median(r.lag_p99_full):.1f} / "
            f"{statistics.median(r.lag_p99_half):.1f} | {replies} |"
        )
    if "memory" in by_key and "sqlite" in by_key:
        per_round = [a.turns_per_second / b.turns_per_second
                     for a, b in zip(by_key["sqlite"].rounds, by_key["memory"].rounds)]
        lines += ["", f"SQLite / memory (same bot): {paired_ratio(by_key['sqlite'], by_key['memory']):.2f}× "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in per_round)})"]

    lines += [
        "",
        "Storage per echo turn by scope (keys read / keys written), storage calls per turn, "
        "and a turn that changes nothing (a conversationUpdate in a welcomed conversation):",
        "",
        "| target | " + " | ".join(SCOPES) + " | read calls | write calls | no-change turn: reads / writes |",
        "|---|" + "---:|" * (len(SCOPES) + 3),
    ]
    for r in results:
        if not r.target.has_storage:
            continue
        cells = [f"{r.per_turn('read:' + s):.2f} / {r.per_turn('write:' + s):.2f}" for s in SCOPES]
        lines.append(
            f"| {r.target.label} | " + " | ".join(cells)
            + f" | {r.per_turn('read_calls'):.2f} | {r.per_turn('write_calls'):.2f}"
            + f" | {r.quiet['reads']:.2f} / {r.quiet['writes']:.2f} |"
        )

    if concurrency:
        lines += [
            "",
            f"Concurrency: pizza `add` turns from {WORKERS} workers alternating between two bot "
            "processes that share one SQLite file; a share of the turns lands on one conversation "
            f"all workers share ({args.duration:.0f} s each).",
            "",
            "| on the shared conversation | turns/s | p50 ms | p99 ms | conflicts (retries) per turn | gave up | failed turns |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in concurrency:
            lines.append(
                f"| {row.shared_fraction:.0%} | {row.load.turns_per_second:,.0f} | "
                f"{row.load.percentile_ms(0.5):.1f} | {row.load.percentile_ms(0.99):.1f} | "
                f"{row.conflicts / max(1, row.load.started):.3f} | {row.gave_up} | {row.load.errors} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each round")
    parser.add_argument("--only", default="", help="comma-separated target keys: bare4,bare3,docs,memory,sqlite,...")
    parser.add_argument("--no-concurrency", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args()

    chosen = targets([k for k in args.only.split(",") if k])
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_dir, Channel() as channel:
        tmp = Path(tmp_dir)
        results: Dict[str, Result] = {}
        with contextlib.ExitStack() as stack:
            emulators = Emulators(tmp, stack)
            bots: Dict[str, BotProcess] = {}
            for target in chosen:
                env = {**BOT_ENV, **target.env}
                if target.env.get("STORAGE") not in (None, "memory"):
                    try:
                        env.update(emulators.env(target.env["STORAGE"], tmp / f"{target.key}.sqlite3"))
                    except ValueError as error:
                        print(f"note: {target.label} skipped: {error}", file=sys.stderr)
                        continue
                bot = BotProcess(env, command=target.command, log_path=tmp / f"{target.key}.log")
                bots[target.key] = stack.enter_context(bot)
                results[target.key] = Result(target)
            asyncio.run(drive(bots, results, channel, args.rounds, args.warmup, args.duration))
        concurrency = [] if args.no_concurrency else measure_concurrency(channel, tmp, args.warmup, args.duration)
    table = render(list(results.values()), concurrency, args)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(f"saved to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
