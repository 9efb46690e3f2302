"""``make bench``: this bot on every store against its limits, over HTTP, in one run.

Every target is a process on 127.0.0.1, driven in turn for several short interleaved
rounds, so a ratio (the median of round-by-round ratios) cancels what else the machine
does. Cloud stores run with and without injected latency, beside three ceilings: the raw
SDK client, the bare handler making its calls, and the engine's own item store alone.

    .venv/bin/python -m bench.run [--rounds 5] [--duration 3] [--only core,cloud,auth,gunicorn|KEYS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.driver import Driver, LoadResult, activity, echo_plan, shared_plan
from state_engine.testing.backends import CLOUD
from state_engine.testing.live_bot import PROJECT_ROOT, BotProcess, free_port, http_get
from state_engine.testing.processes import LoggedProcess

RESULTS = PROJECT_ROOT / "bench" / "results"
#: bench/results/latest.md keeps what follows this line when a run rewrites its tables.
ANALYSIS_MARKER = "<!-- analysis: kept when make bench rewrites the tables above -->"
WORKERS = 20
ECHO_REPLIES = 4
BOT_ENV = {"PYTHONWARNINGS": "ignore"}
PACED_SECONDS = 1.5
SOLO_SECONDS = 1.0
FIRST_ALONE = 15
LATENCIES_MS = (0, 10)
#: The deployment templates' startup command (tests/test_deployment_templates.py checks
#: the templates against the same text); the bench binds 127.0.0.1 and sets --workers.
STARTUP_COMMAND = "gunicorn --bind 0.0.0.0 --worker-class aiohttp.worker.GunicornWebWorker --timeout 600 app:APP"
APP_ID = "00000000-bench-0000-0000-000000000001"
GROUPS = {
    "core": ["bare4", "bare3", "docs", "floor", "sqlite", "memory"],
    "cloud": [f"{s}{ms}" for ms in LATENCIES_MS for s in CLOUD],
    "auth": ["sqlite", "sqlite-auth"],
    "gunicorn": ["gunicorn1", "gunicorn2"],
}


@dataclass
class Target:
    key: str
    label: str
    command: List[str] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)
    replies: int = ECHO_REPLIES
    has_storage: bool = True
    #: /bench/stats exists (not under gunicorn's plain app:APP)
    probes: bool = True
    #: "http": driven over HTTP; "raw": bench/raw_client.py, paired with ``pair``
    kind: str = "http"
    store: str = ""
    latency_ms: int = 0
    pair: str = ""
    authenticated: bool = False


@dataclass
class Result:
    """Everything measured for one target, over all its rounds."""

    target: Target
    rounds: List[LoadResult] = field(default_factory=list)
    storage: Dict[str, Any] = field(default_factory=dict)
    lag_p99_full: List[float] = field(default_factory=list)
    lag_p99_half: List[float] = field(default_factory=list)
    paced_p50: List[float] = field(default_factory=list)
    solo: List[float] = field(default_factory=list)
    gc: Dict[str, Dict[str, float]] = field(default_factory=dict)
    replies_seen: int = 0
    quiet: Dict[str, float] = field(default_factory=dict)
    first: Dict[str, Any] = field(default_factory=dict)

    @property
    def turns_per_second(self) -> float:
        return statistics.median(r.turns_per_second for r in self.rounds)

    @property
    def started(self) -> int:
        return sum(r.started for r in self.rounds)

    def latency_ms(self, q: float) -> float:
        pooled = sorted(x for r in self.rounds for x in r.latencies)
        return pooled[min(len(pooled) - 1, int(q * len(pooled)))] * 1000 if pooled else float("nan")

    def per_turn(self, name: str, counts: Optional[Dict[str, Any]] = None, turns: int = 0) -> float:
        counts = self.storage if counts is None else counts
        return counts.get(name, 0) / max(1, turns or self.started)

    @property
    def cpu_ms_per_turn(self) -> float:
        """The measured process's CPU per turn (all its threads and worker processes),
        over every round."""
        turns = self.storage.get("turns", 0)
        return 1000 * self.storage["cpu_seconds"] / turns if turns else float("nan")

    @property
    def errors(self) -> Dict[int, int]:
        bad: Dict[int, int] = {}
        for r in self.rounds:
            for status, count in r.statuses.items():
                if status not in (200, 201):
                    bad[status] = bad.get(status, 0) + count
        return bad


def add_counts(total: Dict[str, Any], counts: Dict[str, Any]) -> None:
    for name, value in counts.items():
        if isinstance(value, dict):
            add_counts(total.setdefault(name, {}), value)
        else:
            total[name] = total.get(name, 0) + value


def mean_rounds(counts: Dict[str, Any]) -> float:
    histogram = counts.get("rounds", {})
    turns = sum(histogram.values())
    return sum(int(k) * v for k, v in histogram.items()) / turns if turns else float("nan")


class Channel:
    """bench/channel.py in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "bench.channel", "--port", str(self.port)]
        self._process = LoggedProcess(command, Path(tempfile.gettempdir()) / f"bench-channel-{self.port}.log")

    def _answers(self) -> bool:
        with contextlib.suppress(OSError):
            return http_get(f"{self.url}/stats", timeout=1)[0] == 200
        return False

    def __enter__(self) -> "Channel":
        self._process.start(lambda _log: self._answers(), 15, "the bench channel")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._process.stop()


class Stores:
    """Emulators (Azurite, the Cosmos DB emulator at each latency) and delay proxies,
    started when a target needs them; ``env`` gives a fresh container, table or file."""

    def __init__(self, workdir: Path, stack: contextlib.ExitStack) -> None:
        self._workdir = workdir
        self._stack = stack
        self._running: Dict[str, Any] = {}

    def _once(self, name: str, start: Any) -> Any:
        if name not in self._running:
            self._running[name] = start()
        return self._running[name]

    def _azurite(self, latency_ms: int) -> Any:
        from state_engine.testing import emulators
        from state_engine.testing.delay_proxy import start_delay_proxy

        def start() -> Any:
            emulator = emulators.start_azurite(self._workdir / "azurite")
            self._stack.callback(emulator.stop)
            return emulator

        azurite = self._once("azurite", start)
        if not latency_ms:
            return azurite

        def delayed() -> Any:
            ports = {}
            for service in ("blob", "table"):
                proxy = start_delay_proxy(azurite.ports[service], latency_ms)
                self._stack.callback(proxy.stop)
                ports[service] = proxy.port
            return dataclasses.replace(azurite, ports=ports)

        return self._once(f"azurite{latency_ms}", delayed)

    def _cosmos(self, latency_ms: int) -> Any:
        from state_engine.testing import emulators

        def start() -> Any:
            emulator = emulators.start_cosmos(self._workdir / f"cosmos{latency_ms}", latency_ms=latency_ms)
            self._stack.callback(emulator.stop)
            return emulator

        return self._once(f"cosmos{latency_ms}", start)

    def env(self, backend: str, latency_ms: int, sqlite_path: Path) -> Dict[str, str]:
        from state_engine.testing.backends import backend_env

        emulator = None
        if backend in ("blob", "table"):
            emulator = self._azurite(latency_ms)
        elif backend == "cosmos":
            emulator = self._cosmos(latency_ms)
        env = backend_env(backend, emulator, sqlite_path.parent)
        if backend == "sqlite":
            env["SQLITE_PATH"] = str(sqlite_path)
        return env


def targets(only: List[str], raw: bool) -> List[Target]:
    python = sys.executable
    bot = [python, "-m", "bench.serve", "bot"]
    bare = [python, "-m", "bench.bare_handler"]
    found = [
        Target("bare4", "bare aiohttp handler, 4 replies", bare, {"BENCH_REPLIES": "4"}, has_storage=False),
        Target("bare3", "bare aiohttp handler, 3 replies", bare, {"BENCH_REPLIES": "3"}, 3, False),
        Target("docs", "docs' default wiring, MemoryStorage", [python, "-m", "bench.serve", "docs"]),
        Target("floor", "this engine, replies only (no state), sqlite", [python, "-m", "bench.serve", "floor"],
               store="sqlite"),
        Target("sqlite", "this bot, sqlite", bot, store="sqlite"),
        Target("sqlite-auth", "this bot, sqlite, app id + signed tokens", bot, store="sqlite", authenticated=True),
        Target("memory", "this bot, memory", bot, {"STORAGE": "memory"}),
    ]
    for latency in LATENCIES_MS:
        for store in CLOUD:
            key = f"{store}{latency}"
            found.append(Target(key, f"this bot, {store}, +{latency} ms", bot, store=store, latency_ms=latency))
            found.append(Target(f"raw-{key}", f"raw {store} client, +{latency} ms", kind="raw",
                                store=store, latency_ms=latency, pair=key, probes=False))
            found.append(Target(f"engine-{key}", f"the engine's {store} item store alone, +{latency} ms",
                                kind="raw", store=f"engine-{store}", latency_ms=latency, pair=key, probes=False))
            found.append(Target(f"bare-{key}", f"bare aiohttp handler + raw {store} client, +{latency} ms", bare,
                                {"BENCH_STORE": store}, has_storage=False, store=store, latency_ms=latency,
                                pair=key))
    for workers in (1, 2):
        found.append(Target(f"gunicorn{workers}", f"gunicorn (template command), {workers} worker(s), shared sqlite",
                            store="sqlite", probes=False))
    wanted = {key for name in only for key in GROUPS.get(name, [name])}
    chosen = [t for t in found if not wanted or t.key in wanted or (t.pair in wanted and raw)]
    return [t for t in chosen if raw or t.kind != "raw"]


def with_baseline(chosen: List[Target], checkout: Path) -> List[Target]:
    """Each bot target followed by its twin on ``checkout``'s engine (the same bench and
    sample: only ``state_engine`` comes from there, through PYTHONPATH)."""
    found: List[Target] = []
    for target in chosen:
        found.append(target)
        if target.command[-2:] == ["bench.serve", "bot"]:
            env = {**target.env, "PYTHONPATH": str(checkout / "engine")}
            found.append(dataclasses.replace(target, key=f"{target.key}@base", label=f"{target.label} (baseline)",
                                             env=env))
    return found


def gunicorn_command(port: int, workers: int) -> List[str]:
    argv = shlex.split(STARTUP_COMMAND)
    argv[argv.index("0.0.0.0")] = f"127.0.0.1:{port}"
    argv[0] = str(Path(sys.executable).parent / "gunicorn")
    return argv + ["--workers", str(workers)]


async def _prepare(driver: Driver, run_id: str) -> None:
    """Each worker's user says hi and gives a name, so later turns are 4-reply echoes."""

    async def one(worker: int) -> None:
        for text in ("hi", f"Ada {worker}"):
            status = await driver.say(f"{run_id}-c{worker}", f"{run_id}-u{worker}", text)
            if status not in (200, 201):
                raise RuntimeError(f"a set-up turn answered {status}")

    await asyncio.gather(*(one(n) for n in range(WORKERS)))


def item_sizes(result: Result) -> str:
    """The conversation, user and membership item sizes the bot stored (for the raw client)."""
    counts = result.storage
    calls = max(1, counts.get("get_calls", 0))
    sizes = [counts.get(f"get_bytes:{kind}", 0) / calls for kind in ("conversation", "user", "membership")]
    return ",".join(str(max(50, int(size))) for size in sizes)


async def raw_round(target: Target, env: Dict[str, str], sizes: str, warmup: float, duration: float,
                    totals: Dict[str, Any], workers: int = WORKERS) -> LoadResult:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.raw_client", "--store", target.store, "--workers", str(workers),
        "--warmup", str(warmup), "--duration", str(duration), "--sizes", sizes,
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"{target.label}: the raw client failed ({process.returncode})")
    data = json.loads(output.decode().strip().splitlines()[-1])
    add_counts(totals, {"cpu_seconds": data["cpu_seconds"], "turns": data["turns"]})
    return LoadResult(data["turns"], data["seconds"], data["latencies"], data["errors"],
                      {200: data["turns"], 0: data["errors"]} if data["errors"] else {200: data["turns"]},
                      data["turns"])


async def drive(bots: Dict[str, BotProcess], results: Dict[str, Result], channel_url: str,
                envs: Dict[str, Dict[str, str]], headers: Dict[str, Dict[str, str]],
                rounds: int, warmup: float, duration: float) -> None:
    run_ids = {key: uuid.uuid4().hex[:8] for key in bots}
    drivers = {key: Driver([bot.url], channel_url, headers.get(key)) for key, bot in bots.items()}
    async with contextlib.AsyncExitStack() as stack:
        for driver in drivers.values():
            await stack.enter_async_context(driver)
        for key, driver in drivers.items():
            await _prepare(driver, run_ids[key])

        for number in range(rounds):
            for key, result in results.items():
                target = result.target
                print(f"-- round {number + 1}/{rounds}: {target.label}", file=sys.stderr, flush=True)
                if target.kind == "raw":
                    sizes = item_sizes(results[target.pair])
                    result.rounds.append(
                        await raw_round(target, envs[target.pair], sizes, warmup, duration, result.storage))
                    alone = await raw_round(target, envs[target.pair], sizes, 0.3, SOLO_SECONDS, {}, workers=1)
                    result.solo.extend(alone.latencies)
                    result.paced_p50.append(float("nan"))
                    continue
                bot, driver = bots[key], drivers[key]

                async def reset() -> None:
                    if target.probes:
                        await driver.post_empty(f"{bot.url}/bench/reset")
                    await driver.post_empty(f"{channel_url}/reset")

                load = await driver.run(echo_plan(run_ids[key]), WORKERS, warmup, duration, reset)
                result.rounds.append(load)
                result.replies_seen += (await driver.get_json(f"{channel_url}/stats"))["replies"]
                if not target.probes:
                    continue
                stats = await driver.get_json(f"{bot.url}/bench/stats")
                add_counts(result.storage, stats["storage"])
                result.lag_p99_full.append(stats["loop_lag"]["p99_ms"])
                for generation, summary in stats["gc"].items():
                    seen = result.gc.setdefault(generation, {"count": 0, "max_ms": 0.0, "max_cpu_ms": 0.0})
                    seen["max_cpu_ms"] = max(seen["max_cpu_ms"], summary["max_cpu_ms"])
                    seen["count"] += summary["samples"]
                    seen["max_ms"] = max(seen["max_ms"], summary["max_ms"])

                # The same turns paced at half this round's rate: the loop now has
                # spare time, so lag here is blocking, not a saturated CPU.
                load_half = await driver.run(echo_plan(run_ids[key]), WORKERS, 0.5, PACED_SECONDS, reset,
                                             rate=load.turns_per_second / 2)
                paced = await driver.get_json(f"{bot.url}/bench/stats")
                result.lag_p99_half.append(paced["loop_lag"]["p99_ms"])
                result.paced_p50.append(load_half.percentile_ms(0.5))

                # One conversation alone: a turn's latency with no queue in front of it
                # (its storage rounds one after another, plus its own CPU).
                solo = await driver.run(echo_plan(run_ids[key]), 1, 0.3, SOLO_SECONDS, reset)
                result.solo.extend(solo.latencies)

        for key, driver in drivers.items():
            bot, result = bots[key], results[key]
            if not result.target.probes:
                continue
            run_id = run_ids[key]
            await driver.post_empty(f"{bot.url}/bench/reset")
            # A turn that changes nothing: a conversationUpdate in an already-welcomed
            # conversation reads state and sends the welcome; it must write nothing.
            for worker in range(WORKERS):
                await driver.post(0, activity(
                    channel_url, f"{run_id}-c{worker}", f"{run_id}-u{worker}",
                    type="conversationUpdate", membersAdded=[{"id": f"{run_id}-u{worker}"}],
                ))
            result.quiet = (await driver.get_json(f"{bot.url}/bench/stats"))["storage"]
            if not result.target.has_storage:
                continue
            # A user's first message in a conversation (their records there, and their
            # membership entry, are new): a commit across partitions.
            await driver.post_empty(f"{bot.url}/bench/reset")
            began = time.perf_counter()
            latencies = []

            async def first(worker: int) -> None:
                for turn in range(3):
                    started = time.perf_counter()
                    await driver.say(f"{run_id}-new{turn}-c{worker}", f"{run_id}-u{worker}", "hello there")
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(first(n) for n in range(WORKERS)))
            storage = (await driver.get_json(f"{bot.url}/bench/stats"))["storage"]
            # And one at a time: a first message's own latency, with no queue in front.
            alone = []
            for turn in range(FIRST_ALONE):
                started = time.perf_counter()
                await driver.say(f"{run_id}-alone{turn}-c0", f"{run_id}-u0", "hello there")
                alone.append(time.perf_counter() - started)
            result.first = {
                "storage": storage,
                "turns": 3 * WORKERS,
                "p50_ms": statistics.median(latencies) * 1000,
                "alone_p50_ms": statistics.median(alone) * 1000,
                "seconds": time.perf_counter() - began,
            }


@dataclass
class ConcurrencyRow:
    shared_fraction: float
    load: LoadResult
    conflicts: int
    gave_up: int


async def _drive_shared(bots: List[BotProcess], channel_url: str, fraction: float,
                        warmup: float, duration: float) -> ConcurrencyRow:
    async with Driver([b.url for b in bots], channel_url) as driver:

        async def reset() -> None:
            for bot in bots:
                await driver.post_empty(f"{bot.url}/bench/reset")

        plan = shared_plan(uuid.uuid4().hex[:8], fraction, len(bots))
        load = await driver.run(plan, WORKERS, warmup, duration, reset)
        stats = [await driver.get_json(f"{bot.url}/bench/stats") for bot in bots]
    return ConcurrencyRow(fraction, load, sum(s["conflicts"] for s in stats), sum(s["gave_up"] for s in stats))


def measure_concurrency(channel_url: str, tmp: Path, warmup: float, duration: float) -> List[ConcurrencyRow]:
    rows = []
    command = [sys.executable, "-m", "bench.serve", "bot"]
    for fraction in (0.0, 0.5, 1.0):
        print(f"-- concurrency: {fraction:.0%} on one conversation", file=sys.stderr, flush=True)
        env = {**BOT_ENV, "STORAGE": "sqlite", "SQLITE_PATH": str(tmp / f"shared-{fraction}.sqlite3")}
        with BotProcess(env, command=command, log_path=tmp / f"shared-{fraction}-a.log") as first, \
                BotProcess(env, command=command, log_path=tmp / f"shared-{fraction}-b.log") as second:
            rows.append(asyncio.run(_drive_shared([first, second], channel_url, fraction, warmup, duration)))
    return rows


def paired_ratio(result: Result, baseline: Result) -> float:
    """The median of round-by-round ratios. Round n of every target runs back to
    back, so pairing them cancels what the shared machine was doing at the time."""
    pairs = [a.turns_per_second / b.turns_per_second
             for a, b in zip(result.rounds, baseline.rounds) if b.turns_per_second]
    return statistics.median(pairs) if pairs else float("nan")


def _ratio_line(by_key: Dict[str, Result], name: str, key: str, baseline: str) -> List[str]:
    if key not in by_key or baseline not in by_key:
        return []
    a, b = by_key[key], by_key[baseline]
    rounds = ", ".join(f"{x.turns_per_second / y.turns_per_second:.2f}"
                       for x, y in zip(a.rounds, b.rounds) if y.turns_per_second)
    return [f"- {name}: **{paired_ratio(a, b):.2f}×** (rounds: {rounds})"]


def render(results: List[Result], concurrency: List[ConcurrencyRow], args: argparse.Namespace) -> str:
    by_key = {r.target.key: r for r in results}
    bare = by_key.get("bare4")
    lines = [
        f"# Benchmark, {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}. {WORKERS} concurrent "
        f"conversations of echo turns from named users ({ECHO_REPLIES} replies per turn; the "
        "3-reply bare row is the issue's baseline). Driver, channel, emulators, delay proxies and "
        f"bot are separate processes on this machine. {args.rounds} rounds of {args.duration:.0f} s per "
        "target, interleaved; turns/s is the median round, a ratio the median of the "
        "round-by-round ratios, latencies pool all rounds. `+10 ms`: every storage round trip "
        "10 ms longer (the Cosmos DB emulator's --latency-ms; a delay proxy in front of Azurite).",
        "",
        "| target | turns/s | × bare | p50 ms | p99 ms | CPU ms/turn | storage calls/turn (get / put) "
        "| storage rounds/turn | loop lag p99 ms, full / half load | longest full GC ms, pause / CPU (count) | replies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = paired_ratio(r, bare) if bare else float("nan")
        expected = r.started * r.target.replies
        if r.target.kind == "raw":
            replies = "– (no bot)"
        else:
            replies = "all" if r.replies_seen >= expected else f"{r.replies_seen}/{expected}"
        if r.errors:
            replies += f"; failed turns {r.errors}"
        if r.target.has_storage and r.target.probes:
            puts = r.per_turn("put_calls") + r.per_turn("put_all_calls")
            storage = f"{r.per_turn('get_calls'):.2f} / {puts:.2f} | {mean_rounds(r.storage):.2f}"
        elif r.target.kind == "raw":
            storage = "1.00 / 1.00 | 2.00"
        else:
            storage = "– | –"
        lag = (f"{statistics.median(r.lag_p99_full):.1f} / {statistics.median(r.lag_p99_half):.1f}"
               if r.lag_p99_full else "–")
        gen2 = r.gc.get("2")
        gc_text = f"{gen2['max_ms']:.1f} / {gen2['max_cpu_ms']:.1f} ({gen2['count']})" if gen2 else "–"
        cpu = r.cpu_ms_per_turn
        lines.append(
            f"| {r.target.label} | {r.turns_per_second:,.0f} | {ratio:.2f}× | {r.latency_ms(0.5):.1f} | "
            f"{r.latency_ms(0.99):.1f} | {'–' if cpu != cpu else f'{cpu:.2f}'} | {storage} | {lag} | "
            f"{gc_text} | {replies} |"
        )

    lines += ["", "Paired ratios (median of round-by-round ratios):", ""]
    lines += _ratio_line(by_key, "SQLite / bare handler (4 replies)", "sqlite", "bare4")
    lines += _ratio_line(by_key, "engine, replies only / bare handler", "floor", "bare4")
    lines += _ratio_line(by_key, "SQLite / engine, replies only (what the bot's state work costs)", "sqlite", "floor")
    lines += _ratio_line(by_key, "SQLite / memory (same bot)", "sqlite", "memory")
    lines += _ratio_line(by_key, "authenticated / unauthenticated (SQLite)", "sqlite-auth", "sqlite")
    lines += _ratio_line(by_key, "gunicorn 2 workers / 1 worker (one SQLite file)", "gunicorn2", "gunicorn1")
    for latency in LATENCIES_MS:
        for store in CLOUD:
            key = f"{store}{latency}"
            lines += _ratio_line(by_key, f"{store} +{latency} ms / raw {store} client", key, f"raw-{key}")
            lines += _ratio_line(by_key, f"bare handler + raw {store} client / raw {store} client, +{latency} ms "
                                 "(the most a bot on the SDK's calls reaches here)", f"bare-{key}", f"raw-{key}")
            lines += _ratio_line(by_key, f"{store} +{latency} ms / bare handler + raw {store} client",
                                 key, f"bare-{key}")
            lines += _ratio_line(by_key, f"{store} +{latency} ms / the engine's {store} item store alone",
                                 key, f"engine-{key}")
    for key, result in by_key.items():
        if key.endswith("@base"):
            after = by_key[key[: -len("@base")]]
            lines += _ratio_line(by_key, f"{after.target.label}: this checkout / baseline", after.target.key, key)
            lines.append(f"  CPU ms/turn: {after.cpu_ms_per_turn:.2f} vs {result.cpu_ms_per_turn:.2f} (baseline)")

    timed = [r for r in results if r.solo]
    if timed:
        lines += [
            "",
            "A turn's own latency: one conversation alone (no queue: its storage rounds one after "
            "another plus its CPU), and the 20 conversations paced at half the measured rate. "
            "Target: p50 alone < 2.5 × the injected round trip + the bot's CPU per turn.",
            "",
            "| target | alone: p50 / p99 ms | half load: p50 ms | CPU ms/turn | rounds/turn "
            "| 2.5 × RTT + CPU ms | met |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in timed:
            solo = sorted(r.solo)
            p50, p99 = solo[len(solo) // 2] * 1000, solo[min(len(solo) - 1, int(0.99 * len(solo)))] * 1000
            bound = 2.5 * r.target.latency_ms + r.cpu_ms_per_turn
            met = ("yes" if p50 < bound else "no") if r.target.latency_ms and r.target.kind != "raw" else "–"
            if r.target.kind == "raw":
                rounds = "2.00"
            else:
                rounds = f"{mean_rounds(r.storage):.2f}" if r.target.has_storage else "–"
            half = statistics.median(r.paced_p50) if r.target.kind != "raw" else float("nan")
            lines.append(
                f"| {r.target.label} | {p50:.1f} / {p99:.1f} | {half:.1f} | "
                f"{r.cpu_ms_per_turn:.2f} | {rounds} | {bound:.1f} | {met} |"
            )

    with_storage = [r for r in results if r.target.has_storage and r.target.probes and r.storage]
    if with_storage:
        lines += [
            "",
            "Storage per turn (ItemStore calls and items; rounds = storage waits one after another on "
            "the turn's critical path, overlapping calls counted once): a usual echo turn, a user's "
            "first message in a conversation (3 per worker), and a turn that changes nothing "
            "(a conversationUpdate in a welcomed conversation).",
            "",
            "| target | usual: get calls (items) | put calls (items) | rounds | first message: get calls "
            "| put calls | rounds | p50 ms, 20 at once / alone | no-change: get / put calls |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in with_storage:
            usual = (f"{r.per_turn('get_calls'):.2f} ({r.per_turn('get_items'):.2f}) | "
                     f"{r.per_turn('put_calls') + r.per_turn('put_all_calls'):.2f} "
                     f"({r.per_turn('put_items') + r.per_turn('put_all_items'):.2f}) | {mean_rounds(r.storage):.2f}")
            if r.first:
                fs, turns = r.first["storage"], r.first["turns"]
                first = (f"{r.per_turn('get_calls', fs, turns):.2f} | "
                         f"{r.per_turn('put_calls', fs, turns) + r.per_turn('put_all_calls', fs, turns):.2f} | "
                         f"{mean_rounds(fs):.2f} | {r.first['p50_ms']:.1f} / {r.first['alone_p50_ms']:.1f}")
            else:
                first = "– | – | – | –"
            quiet = r.quiet
            no_change = (f"{quiet.get('get_calls', 0) / WORKERS:.2f} / "
                         f"{(quiet.get('put_calls', 0) + quiet.get('put_all_calls', 0)) / WORKERS:.2f}")
            lines.append(f"| {r.target.label} | {usual} | {first} | {no_change} |")

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
    parser.add_argument("--only", default="", help="groups (" + ", ".join(GROUPS) + ") or target keys, "
                        "comma-separated: bare4,sqlite,cosmos10,...")
    parser.add_argument("--no-raw", action="store_true", help="leave out the raw-client rows")
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier commit (git worktree add "
                        "--detach DIR COMMIT): every bot target also runs on its engine, paired in the same rounds")
    parser.add_argument("--no-concurrency", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args()

    chosen = targets([k for k in args.only.split(",") if k], raw=not args.no_raw)
    if args.baseline:
        chosen = with_baseline(chosen, args.baseline.resolve())
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_dir, Channel() as channel:
        tmp = Path(tmp_dir)
        results: Dict[str, Result] = {}
        with contextlib.ExitStack() as stack:
            stores = Stores(tmp, stack)
            issuer = None
            bots: Dict[str, BotProcess] = {}
            envs: Dict[str, Dict[str, str]] = {}
            headers: Dict[str, Dict[str, str]] = {}
            for target in chosen:
                if target.kind == "raw":
                    results[target.key] = Result(target)
                    continue
                env = {**BOT_ENV, **target.env}
                if target.store and target.store != "memory":
                    env.update(stores.env(target.store, target.latency_ms, tmp / f"{target.key}.sqlite3"))
                if target.authenticated:
                    if issuer is None:
                        from state_engine.testing.openid import OpenIdIssuer

                        issuer = stack.enter_context(OpenIdIssuer())
                    env.update(MicrosoftAppId=APP_ID, MicrosoftAppPassword="bench-secret",
                               BotOpenIdMetadata=issuer.metadata_url)
                    headers[target.key] = {"Authorization": issuer.authorization(APP_ID, channel.url)}
                port = free_port()
                command = target.command
                if target.key.startswith("gunicorn"):
                    command = gunicorn_command(port, int(target.key[-1]))
                bot = BotProcess(env, port=port, command=command, log_path=tmp / f"{target.key}.log")
                bots[target.key] = stack.enter_context(bot)
                envs[target.key] = env
                results[target.key] = Result(target)
            results = {k: r for k, r in results.items() if r.target.kind != "raw" or r.target.pair in bots}
            asyncio.run(drive(bots, results, channel.url, envs, headers, args.rounds, args.warmup, args.duration))
        concurrency = [] if args.no_concurrency else measure_concurrency(channel.url, tmp, args.warmup, args.duration)
    table = render(list(results.values()), concurrency, args)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # The written analysis below the marker (profiles, changes, what did not help) stays.
    if args.output.exists() and ANALYSIS_MARKER in args.output.read_text():
        old = args.output.read_text()
        table += "\n" + old[old.index(ANALYSIS_MARKER):]
    args.output.write_text(table)
    print(f"saved to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
