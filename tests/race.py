"""The docs' pizza race over real HTTP: N users of one conversation add a topping at once.

``run_race(bot_urls, channel, n)`` releases the clients together, alternating over the
bots, and reports what each heard and what the order became (acknowledged, busy, lost,
duplicated), so the same harness measures any wiring: the scale-out tests, the bench.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol, Sequence
from urllib.parse import urlsplit

from state_engine.turns.runner import TurnMessages

BUSY_MESSAGE = TurnMessages().busy

ADDED = re.compile(r"^Added (?P<topping>.+?)\. Order: (?P<order>.*)$")
REFEREE = "referee"


class Channel(Protocol):
    url: str

    def activities(self, conversation_id: Optional[str] = None) -> List[Dict[str, Any]]: ...

    def replies_to(self, activity_id: str) -> List[Dict[str, Any]]: ...


@dataclass(frozen=True)
class Message:
    """One client's message: who says what, in which conversation, to which bot."""

    bot_url: str
    conversation_id: str
    user_id: str
    text: str
    activity_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class RaceResult:
    """What every client heard and what the order ended up as."""

    conversation_id: str
    toppings: List[str]
    replies: Dict[str, List[str]]  # topping -> texts of the replies its client received
    statuses: Dict[str, int]  # topping -> HTTP status of its POST (0: no answer)
    final_order: List[str]  # the order after the race, as `order` reports it
    channel_replies: int  # replies the channel received in the conversation during the race
    seconds: float  # barrier release to last response

    @property
    def acknowledged(self) -> List[str]:
        """Toppings whose client was told ``Added <topping>. ...``."""
        return [t for t in self.toppings if _snapshot(t, self.replies[t]) is not None]

    @property
    def busy(self) -> List[str]:
        """Toppings whose client got exactly the busy message and nothing else."""
        return [t for t in self.toppings if self.replies[t] == [BUSY_MESSAGE]]

    @property
    def lost(self) -> List[str]:
        """Lost updates: the user was told it was added, the order does not have it."""
        return [t for t in self.acknowledged if t not in self.final_order]

    @property
    def duplicated(self) -> List[str]:
        return sorted({t for t in self.final_order if self.final_order.count(t) > 1})

    @property
    def unsaved_replies(self) -> List[str]:
        """Toppings whose reply shows an order that was never saved: toppings are only
        appended, so every saved order is a prefix of the final one, ending in its topping."""
        bad = []
        for topping in self.acknowledged:
            shown = _snapshot(topping, self.replies[topping])
            if not shown or shown[-1] != topping or shown != self.final_order[: len(shown)]:
                bad.append(topping)
        return bad

    def summary(self) -> str:
        return (
            f"{len(self.toppings)} clients in {self.seconds:.2f}s: "
            f"{len(self.acknowledged)} acknowledged, {len(self.busy)} busy, "
            f"{len(self.lost)} lost, {len(self.duplicated)} duplicated, "
            f"{len(self.unsaved_replies)} replies showing unsaved state, "
            f"{self.channel_replies} replies on the channel"
        )


def run_race(
    bot_urls: Sequence[str], channel: Channel, n: int, conversation_id: Optional[str] = None
) -> RaceResult:
    """Open one conversation, then have ``n`` distinct users send ``add topping-<i>``
    to it at the same moment, alternating over ``bot_urls``; read the order after."""
    conversation_id = conversation_id or f"pizza-{uuid.uuid4().hex[:8]}"
    # The conversation exists before the race, so nobody's reply includes the welcome.
    say(Message(bot_urls[0], conversation_id, REFEREE, "order"), channel)
    before = len(channel.activities(conversation_id))

    toppings = [f"topping-{i:02d}" for i in range(n)]
    messages = [
        Message(bot_urls[i % len(bot_urls)], conversation_id, f"user-{i:02d}", f"add {topping}")
        for i, topping in enumerate(toppings)
    ]
    statuses, seconds = send_together(messages, channel)
    channel_replies = len(channel.activities(conversation_id)) - before

    order_reply = say(Message(bot_urls[0], conversation_id, REFEREE, "order"), channel)
    return RaceResult(
        conversation_id=conversation_id,
        toppings=toppings,
        replies={t: reply_texts(channel, m) for t, m in zip(toppings, messages)},
        statuses=dict(zip(toppings, statuses)),
        final_order=parse_order(order_reply),
        channel_replies=channel_replies,
        seconds=seconds,
    )


def send_together(messages: Sequence[Message], channel: Channel) -> tuple[List[int], float]:
    """Post every message from its own thread, all released by one barrier. Each
    client connects before the barrier, so the requests really arrive together.
    Returns each POST's HTTP status (0 if it failed) and the wall time taken."""
    barrier = threading.Barrier(len(messages) + 1)
    statuses = [0] * len(messages)

    def client(index: int) -> None:
        message = messages[index]
        body = json.dumps(activity(message, channel.url)).encode("utf-8")
        connection = http.client.HTTPConnection(urlsplit(message.bot_url).netloc, timeout=60)
        try:
            connection.connect()
            barrier.wait()
            connection.request("POST", "/api/messages", body, {"Content-Type": "application/json"})
            statuses[index] = connection.getresponse().status
        except OSError:
            statuses[index] = 0
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(messages))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return statuses, time.perf_counter() - started


def say(message: Message, channel: Channel) -> List[str]:
    """Send one message and return the texts of its replies (they arrive before the POST returns)."""
    status = post(message.bot_url, activity(message, channel.url))
    if status not in (200, 201, 202):
        raise RuntimeError(f"{message.bot_url} answered {status} to {message.text!r}")
    return reply_texts(channel, message)


def reply_texts(channel: Channel, message: Message) -> List[str]:
    return [a.get("text", "") for a in channel.replies_to(message.activity_id) if a["type"] == "message"]


def parse_order(replies: List[str]) -> List[str]:
    """``Order: a, b`` -> ``["a", "b"]``; ``Order: (empty)`` -> ``[]``."""
    line = next(r for r in replies if r.startswith("Order: "))
    listed = line[len("Order: ") :]
    return [] if listed == "(empty)" else listed.split(", ")


def count_conflicts(log_text: str) -> int:
    """How many attempts the turn runner threw away (it logs one line per conflict)."""
    return log_text.count("turn conflict")


def activity(message: Message, service_url: str) -> Dict[str, Any]:
    return {
        "type": "message",
        "id": message.activity_id,
        "channelId": "emulator",
        "serviceUrl": service_url,
        "from": {"id": message.user_id, "name": message.user_id, "role": "user"},
        "recipient": {"id": "bot", "name": "Bot", "role": "bot"},
        "conversation": {"id": message.conversation_id},
        "text": message.text,
        "locale": "en-US",
    }


def post(bot_url: str, body: Dict[str, Any], timeout: float = 60) -> int:
    request = urllib.request.Request(
        f"{bot_url}/api/messages",
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _snapshot(topping: str, replies: List[str]) -> Optional[List[str]]:
    """The order an ``Added <topping>`` reply shows, or None if there is no such reply."""
    for text in replies:
        match = ADDED.match(text)
        if match and match["topping"] == topping:
            listed = match["order"]
            return [] if listed == "(empty)" else listed.split(", ")
    return None
