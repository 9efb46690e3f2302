"""Every cloud store behind an HTTP proxy named by the environment (``HTTP_PROXY``, as a
network with a way out only through one gives it): setup, the item calls and the health
check all go through it, and the store works; ``NO_PROXY`` naming the endpoint bypasses it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from state_engine.conditions import ABSENT
from state_engine.stores import open_items, read_backend_settings
from state_engine.stores.items import Put
from state_engine.testing.backends import CLOUD
from state_engine.testing.fault_proxy import upstream_of
from state_engine.testing.local_app import forward, serving

EnvFor = Callable[[str], Dict[str, str]]


@dataclass
class ForwardingProxy:
    """An HTTP proxy: forwards each request to the URL it names, recording its methods."""

    methods: List[str] = field(default_factory=list)
    origins: List[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.methods.append(request.method)
        self.origins.append(str(request.url.origin()))
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            return await forward(session, request, URL(str(request.url), encoded=True), await request.read())


@pytest.mark.parametrize("name", CLOUD)
async def test_a_store_behind_a_proxy_sends_everything_through_it(
    backend_env: EnvFor, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    env = backend_env(name)
    proxy = ForwardingProxy()
    async with serving(proxy.handle) as proxy_url:
        for variable in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        items = open_items(name, read_backend_settings(name, env))
        try:
            e_tag = await items.put(Put("user/1", '{"n": 1}', ABSENT))
            before = len(proxy.methods)
            found = await items.get(["user/1", "user/2"])
            assert found["user/1"].e_tag == e_tag and "user/2" not in found
            assert len(proxy.methods) - before >= 2, "each item read went through the proxy"
            await items.ping()
        finally:
            await items.close()
        assert set(proxy.origins) == {upstream_of(env)}
        assert {"GET"} < set(proxy.methods)

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        seen = len(proxy.methods)
        items = open_items(name, read_backend_settings(name, env))
        try:
            assert (await items.get(["user/1"]))["user/1"].e_tag == e_tag
        finally:
            await items.close()
        assert len(proxy.methods) == seen
