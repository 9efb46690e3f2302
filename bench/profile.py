"""Where a bot process spends its CPU under the bench's load: py-spy on one target.

Starts one target of ``bench.run`` with what its store needs, drives it with the bench's
load while ``py-spy record --gil`` samples it, and prints where the GIL was held.

    .venv/bin/python -m bench.profile sqlite [--seconds 10] [--top 25] [--raw out.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

from bench.driver import Driver, echo_plan
from bench.run import APP_ID, BOT_ENV, WORKERS, Channel, Stores, _prepare, gunicorn_command, targets
from state_engine.testing.live_bot import BotProcess, free_port

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _where(file: str) -> str:
    """A short name for the code a frame is in: the package after site-packages, or ours."""
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1]
    for marker in ("/engine/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def summarize(raw: str, top: int) -> str:
    """Own and inclusive shares of the samples, by function, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names: List[str] = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame.strip())
            if match is None:
                names.append(frame.strip())
                continue
            names.append(f"{match['function']} ({_where(match['file'])})")
        if not names:
            continue
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
        leaf_file = names[-1].rsplit("(", 1)[-1]
        packages[leaf_file.split("/")[0].rstrip(")")] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples holding the GIL", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "including callees (below 65%):"]
    # Frames under which nearly everything runs (the loop, the request handler) say nothing.
    shown = [(name, n) for name, n in inclusive.most_common() if n / total < 0.65][:top]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in shown]
    lines += ["", "own time by package:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in packages.most_common(15)]
    return "\n".join(lines)


async def _load(bot_url: str, channel_url: str, headers: Dict[str, str], seconds: float,
                record: List[str]) -> Tuple[float, float]:
    run_id = uuid.uuid4().hex[:8]
    async with Driver([bot_url], channel_url, headers) as driver:
        await _prepare(driver, run_id)
        await driver.run(echo_plan(run_id), WORKERS, 1.0, 0.5, _noop)
        spy = subprocess.Popen(record)
        load = await driver.run(echo_plan(run_id), WORKERS, 0.0, seconds, _noop)
        await asyncio.get_running_loop().run_in_executor(None, spy.wait)
    return load.turns_per_second, load.percentile_ms(0.5)


async def _noop() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a target key of bench.run (sqlite, cosmos0, blob10, sqlite-auth, ...)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw stacks here")
    args = parser.parse_args()
    py_spy = str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        py_spy = shutil.which("py-spy") or ""
    if not py_spy:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    [target] = [t for t in targets([args.target], raw=False) if t.key == args.target]
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp_dir, Channel() as channel, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp_dir)
        env = {**BOT_ENV, **target.env}
        headers: Dict[str, str] = {}
        if target.store and target.store != "memory":
            env.update(Stores(tmp, stack).env(target.store, target.latency_ms, tmp / "state.sqlite3"))
        if target.authenticated:
            from state_engine.testing.openid import OpenIdIssuer

            issuer = stack.enter_context(OpenIdIssuer())
            env.update(MicrosoftAppId=APP_ID, MicrosoftAppPassword="bench-secret",
                       BotOpenIdMetadata=issuer.metadata_url)
            headers = {"Authorization": issuer.authorization(APP_ID, channel.url)}
        port = free_port()
        command = gunicorn_command(port, 1) if target.key.startswith("gunicorn") else target.command
        bot = stack.enter_context(BotProcess(env, port=port, command=command, log_path=tmp / "bot.log"))
        out = args.raw or tmp / "stacks.txt"
        record = [py_spy, "record", "--gil", "--nonblocking", "-r", str(args.rate), "-d", str(int(args.seconds)),
                  "-f", "raw", "-o", str(out), "-p", str(bot.pid)]
        turns, p50 = asyncio.run(_load(bot.url, channel.url, headers, args.seconds, record))
        print(f"{target.label}: {turns:,.0f} turns/s, p50 {p50:.1f} ms while sampled")
        print(summarize(out.read_text(), args.top))


if __name__ == "__main__":
    main()
