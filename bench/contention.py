"""What optimistic concurrency costs: turns/second and retries per turn by contention.

Two bot processes share one SQLite file (the scale-out setup of the pizza race).
Each round, ``clients`` users send ``add <topping>`` at the same moment,
alternating between the processes. At 0% contention every user is in a
conversation of their own; at 50% half of them share one group conversation;
at 100% all of them do. Retries are the runner's ``turn conflict`` log lines.

    .venv/bin/python -m bench.contention [--clients 20] [--rounds 10]

``measure(contention, clients, rounds)`` returns the figures for bench/run.py.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

from tests.race import Message, count_conflicts, send_together
from state_engine.testing.live_bot import BotProcess, ChannelServer


@dataclass(frozen=True)
class ContentionResult:
    contention: float
    turns: int
    seconds: float
    retries: int
    failed: int  # POSTs not answered 2xx (should be 0)

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.seconds

    @property
    def retries_per_turn(self) -> float:
        return self.retries / self.turns


def measure(
    contention: float, clients: int = 20, rounds: int = 10, max_retries: int = 20
) -> ContentionResult:
    """Start a channel and two bot processes on a fresh SQLite file, run the rounds."""
    with tempfile.TemporaryDirectory() as folder, ChannelServer() as channel:
        env = {
            "STORAGE": "sqlite",
            "SQLITE_PATH": str(Path(folder) / "shared.sqlite3"),
            "TURN_MAX_RETRIES": str(max_retries),
            "LOG_LEVEL": "INFO",
        }
        bots = [BotProcess(env).start(), BotProcess(env).start()]
        try:
            return _rounds(contention, clients, rounds, [bot.url for bot in bots], channel, bots)
        finally:
            for bot in bots:
                bot.stop()


def _rounds(
    contention: float,
    clients: int,
    rounds: int,
    urls: Sequence[str],
    channel: ChannelServer,
    bots: List[BotProcess],
) -> ContentionResult:
    shared = round(clients * contention)
    seconds, failed = 0.0, 0
    for number in range(rounds):
        messages = [
            Message(
                urls[i % len(urls)],
                "group" if i < shared else f"solo-{i}",
                f"user-{i}",
                f"add r{number}-u{i}",
            )
            for i in range(clients)
        ]
        statuses, elapsed = send_together(messages, channel)
        seconds += elapsed
        failed += sum(1 for status in statuses if not 200 <= status < 300)
    retries = sum(count_conflicts(bot.logs()) for bot in bots)
    return ContentionResult(contention, clients * rounds, seconds, retries, failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    print(f"{args.clients} clients x {args.rounds} rounds, 2 processes, one SQLite file")
    print("| contention | turns/s | retries/turn | failed |")
    print("|---:|---:|---:|---:|")
    for contention in (0.0, 0.5, 1.0):
        result = measure(contention, args.clients, args.rounds)
        print(
            f"| {contention:.0%} | {result.turns_per_second:.0f} | "
            f"{result.retries_per_turn:.2f} | {result.failed} |"
        )


if __name__ == "__main__":
    main()
