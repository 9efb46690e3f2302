"""A reverse proxy in front of a store's emulator that fails item writes as a network can.

The answer to a write the store carried out is lost; a write is held back and arrives
after its caller gave up; the store becomes unreachable. It runs on a thread of its own,
so a bot process, or a test that blocks, can use it alike.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from aiohttp import web

from .backends import HOOKS
from .local_app import ThreadedServer, forward

_WRITE_METHODS = {"PUT", "POST", "DELETE", "PATCH", "MERGE"}
_LOOPBACK_ORIGIN = re.compile(r"http://127\.0\.0\.1:\d+")


@dataclass
class _Fault:
    """What happens to one write: ``skip`` writes go through first."""

    skip: int
    lose_answer: bool = False
    hold_seconds: float = 0.0
    then_cut: bool = False


@dataclass
class FaultProxy:
    """Forwards every request to ``upstream`` (an origin such as ``http://127.0.0.1:10000``),
    failing the writes it is told to. A query (Cosmos DB POSTs those) is not a write."""

    upstream: str
    #: Every write forwarded to the store, as "METHOD path".
    writes: List[str] = field(default_factory=list)
    _faults: List[_Fault] = field(default_factory=list)
    _cut: bool = False

    def __post_init__(self) -> None:
        self._server = ThreadedServer(self._handle)
        self.url = self._server.url

    # -- what to do to the next writes -------------------------------------------------

    def lose_answer(self, skip: int = 0, then_cut: bool = False) -> None:
        """The write after the next ``skip`` is carried out, and its connection closed
        without an answer; ``then_cut``: and from then on the store is gone (``cut``)."""
        self._faults.append(_Fault(skip, lose_answer=True, then_cut=then_cut))

    def hold_write(self, seconds: float, skip: int = 0) -> None:
        """The write after the next ``skip`` waits ``seconds`` before it is forwarded."""
        self._faults.append(_Fault(skip, hold_seconds=seconds))

    def cut(self) -> None:
        """From now on every request's connection is closed unanswered (the store is gone)."""
        self._cut = True

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fault_for(self, request: web.Request) -> Optional[_Fault]:
        is_write = request.method in _WRITE_METHODS and "x-ms-documentdb-isquery" not in request.headers
        if not is_write or not self._faults:
            return None
        fault = self._faults[0]
        if fault.skip:
            fault.skip -= 1
            return None
        return self._faults.pop(0)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self._cut:
            return _unanswered(request)
        fault = self._fault_for(request)
        if fault is not None and fault.hold_seconds:
            await asyncio.sleep(fault.hold_seconds)
        if request.method in _WRITE_METHODS:
            self.writes.append(f"{request.method} {request.path}")
        assert self._server.session is not None
        answer = await forward(self._server.session, request, self.upstream + request.path_qs, body)
        if fault is not None and fault.lose_answer:
            self._cut = fault.then_cut
            return _unanswered(request)
        return answer


def _unanswered(request: web.Request) -> web.StreamResponse:
    """Close the connection with no answer written (the response returned is never sent)."""
    assert request.transport is not None
    request.transport.close()
    return web.Response(status=599)


def through(env: Dict[str, str], proxy: FaultProxy) -> Dict[str, str]:
    """``env`` (a cloud backend's settings) with its endpoint turned to ``proxy``."""
    setting = HOOKS[env["STORAGE"]].endpoint_setting
    assert setting, f"{env['STORAGE']} has no endpoint to put a proxy before"
    return {**env, setting: _LOOPBACK_ORIGIN.sub(proxy.url, env[setting])}


def upstream_of(env: Dict[str, str]) -> str:
    """The emulator's origin that a cloud backend's settings point at."""
    setting = HOOKS[env["STORAGE"]].endpoint_setting
    assert setting, f"{env['STORAGE']} has no endpoint"
    found = _LOOPBACK_ORIGIN.search(env[setting])
    assert found, f"{setting} names no 127.0.0.1 endpoint"
    return found.group(0)
