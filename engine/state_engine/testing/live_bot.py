"""The bot as the Emulator sees it, for tests: ``BotProcess`` runs ``app.py`` on a free
port, ``ChannelServer`` is the local channel that records the bot's replies, and
``EmulatorClient`` posts activities and returns the replies (all sent before the POST
is answered, so they are recorded by the time ``say`` returns).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

from aiohttp import web

from .paths import PROJECT_ROOT
from .processes import LoggedProcess, free_port, local_env


class ChannelServer:
    """Records the activities the bot sends, in a thread of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._activities: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="channel-server")
        self._runner: Optional[web.BaseRunner] = None
        self._ids = itertools.count(1)

    def __enter__(self) -> "ChannelServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the local channel server did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _make_runner(self) -> web.BaseRunner:
        """The Bot Connector routes a channel serves for replies."""
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._receive)
        app.router.add_post(
            "/v3/conversations/{conversation}/activities/{reply_to}", self._receive
        )
        return web.AppRunner(app, access_log=None)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = self._make_runner()
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    async def _receive(self, request: web.Request) -> web.Response:
        activity = await request.json()
        activity["_path_conversation"] = request.match_info["conversation"]
        with self._lock:
            self._activities.append(activity)
        return web.json_response({"id": f"reply-{next(self._ids)}"})

    def activities(self, conversation_id: Optional[str] = None) -> List[Dict[str, Any]]:
        with self._lock:
            return [
                a
                for a in self._activities
                if conversation_id is None or a["_path_conversation"] == conversation_id
            ]

    def replies_to(self, activity_id: str) -> List[Dict[str, Any]]:
        with self._lock:
            return [a for a in self._activities if a.get("replyToId") == activity_id]


def http_post_json(
    url: str, body: Any, headers: Optional[Dict[str, str]] = None, timeout: float = 30
) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class BotProcess:
    """``python app.py`` in its own process, on a free 127.0.0.1 port."""

    def __init__(
        self,
        env: Dict[str, str],
        port: Optional[int] = None,
        command: Optional[List[str]] = None,
        log_path: Optional[Path] = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = command or [sys.executable, str(PROJECT_ROOT / "app.py")]
        self._env = local_env({"HOST": "127.0.0.1", "PORT": str(self.port), **env})
        self.log_path = log_path or Path(f"/tmp/bot-{self.port}-{uuid.uuid4().hex[:6]}.log")
        self._process = LoggedProcess(self._command, self.log_path, self._env)

    def start(self, timeout: float = 30) -> "BotProcess":
        """Start and wait until /healthz answers (200, or 503 when its store is down)."""
        self._process.start(lambda _log: self._answers(), timeout, "the bot")
        return self

    def _answers(self) -> bool:
        try:
            return http_get(f"{self.url}/healthz", timeout=2)[0] in (200, 503)
        except OSError:
            return False

    def stop(self, grace: float = 10.0) -> Optional[int]:
        """SIGTERM, then a kill after ``grace`` seconds; the exit code (None: killed)."""
        return self._process.stop(grace=grace)

    def restart(self) -> "BotProcess":
        self.stop()
        return self.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.alive

    def logs(self) -> str:
        return self._process.logs()

    def __enter__(self) -> "BotProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class EmulatorClient:
    """Talks to the bot as the Bot Framework Emulator does."""

    def __init__(self, bot_url: str, channel: ChannelServer, channel_id: str = "emulator") -> None:
        self.bot_url = bot_url
        self.channel = channel
        self.channel_id = channel_id

    def activity(
        self,
        activity_type: str = "message",
        text: Optional[str] = None,
        conversation_id: str = "conversation-1",
        user_id: str = "user-1",
        **fields: Any,
    ) -> Dict[str, Any]:
        body: Dict[str, Any] = {
            "type": activity_type,
            "id": uuid.uuid4().hex,
            "channelId": self.channel_id,
            "serviceUrl": self.channel.url,
            "from": {"id": user_id, "name": "User", "role": "user"},
            "recipient": {"id": "bot", "name": "Bot", "role": "bot"},
            "conversation": {"id": conversation_id},
            "timestamp": "2026-11-25T12:00:00.000Z",
            "locale": "en-US",
        }
        if text is not None:
            body["text"] = text
        body.update(fields)
        return body

    def post(self, body: Any, headers: Optional[Dict[str, str]] = None) -> tuple[int, bytes]:
        return http_post_json(f"{self.bot_url}/api/messages", body, headers)

    def send(self, body: Dict[str, Any]) -> List[str]:
        """Post an activity; return the texts of the bot's replies to it.

        Replies to a message carry its id as ``replyToId``; a welcome sent on a
        conversationUpdate carries none, so those count if they arrived during the POST."""
        conversation_id = body["conversation"]["id"]
        before = len(self.channel.activities(conversation_id))
        status, response = self.post(body)
        if status not in (200, 201, 202):
            raise AssertionError(f"/api/messages answered {status}: {response[:500]!r}")
        arrived = self.channel.activities(conversation_id)[before:]
        return [
            a.get("text", "")
            for a in arrived
            if a["type"] == "message" and a.get("replyToId") in (None, body["id"])
        ]

    def say(self, text: str, conversation_id: str = "conversation-1", user_id: str = "user-1") -> List[str]:
        return self.send(self.activity(text=text, conversation_id=conversation_id, user_id=user_id))

    def join(self, conversation_id: str = "conversation-1", user_id: str = "user-1") -> List[str]:
        """The conversationUpdate the Emulator sends when a conversation starts."""
        return self.send(
            self.activity(
                "conversationUpdate",
                conversation_id=conversation_id,
                user_id=user_id,
                membersAdded=[{"id": user_id, "name": "User"}, {"id": "bot", "name": "Bot"}],
            )
        )
