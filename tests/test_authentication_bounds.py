"""Token checks bounded in time, threads and sockets, on the real app process.

With an app id the bot checks each token against signing keys published as OpenID
metadata. Here that endpoint is first a server that accepts and never answers (every
way out, the proxy included, leads there): bad tokens keep getting a quick 401 and the
bot's threads and sockets stay few. Then a local issuer publishes real keys and signs
channel tokens: the SDK accepts them for the bot's app id and refuses every variation.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bots.state_bot import WELCOME
from state_engine.hosting.authentication import AUTH_TIMEOUT_SECONDS, MAX_WAITING_FOR_KEYS
from state_engine.testing.blackhole import Blackhole
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient, http_get
from state_engine.testing.openid import OpenIdIssuer
from tests.http_probe import RawHttp, error_reason

APP_ID = "00000000-1111-2222-3333-444444444444"
# Issuers the SDK fetches keys for: the Bot Framework's, and the Emulator's (Azure AD v1).
CHANNEL_ISSUER = "https://api.botframework.com"
EMULATOR_ISSUER = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"


def proc_status(pid: int) -> Tuple[int, int]:
    """(threads, open sockets) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:  # closed meanwhile
            continue
    return threads, sockets


FORGING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def forged_token(issuer: str, audience: str = APP_ID, service_url: str = "x") -> str:
    """A token naming a real issuer, signed with a key nobody published (a new key id each)."""
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "exp": now + 600, "nbf": now - 10,
              "serviceurl": service_url, "ver": "1.0", "appid": APP_ID}
    return jwt.encode(claims, FORGING_KEY, algorithm="RS256", headers={"kid": uuid.uuid4().hex})


# --- A metadata endpoint that never answers ----------------------------------------------


@pytest.fixture(scope="module")
def hung(tmp_path_factory) -> Iterator[Tuple[BotProcess, ChannelServer, Blackhole]]:
    with Blackhole() as blackhole, ChannelServer() as channel:
        env = {
            "STORAGE": "sqlite",
            "SQLITE_PATH": str(tmp_path_factory.mktemp("hung") / "state.sqlite3"),
            "MicrosoftAppId": APP_ID,
            "MicrosoftAppPassword": "fake-password-for-auth-tests",
            "BotOpenIdMetadata": f"{blackhole.url}/v1/.well-known/openidconfiguration",
            "HTTPS_PROXY": blackhole.url,
            "HTTP_PROXY": blackhole.url,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        with BotProcess(env) as bot:
            yield bot, channel, blackhole


def test_requests_beyond_those_allowed_to_wait_for_the_keys_get_503_at_once(hung):
    """First in the module: the keys' first fetch is still to come. It hangs; while it
    does, MAX_WAITING_FOR_KEYS requests wait for it and the others are turned away."""
    bot, channel, _ = hung
    client = EmulatorClient(bot.url, channel)
    count = MAX_WAITING_FOR_KEYS + 32
    barrier = threading.Barrier(count)

    def post(index: int) -> Tuple[int, bytes, Dict[str, str], float]:
        activity = client.activity(text="hi", conversation_id=f"crowd-{index}")
        headers = {"Authorization": f"Bearer {forged_token(EMULATOR_ISSUER)}"}
        http = RawHttp(bot.port)
        barrier.wait(30)
        started = time.monotonic()
        try:
            status, body = http.post_json(activity, headers=headers)
        finally:
            http.close()
        return status, body, http.headers, time.monotonic() - started

    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(post, range(count)))
    statuses = [status for status, _, _, _ in answers]
    assert set(statuses) == {401, 503}, statuses
    assert statuses.count(401) >= MAX_WAITING_FOR_KEYS
    for status, body, headers, seconds in answers:
        if status == 503:
            assert "waiting to be authenticated" in error_reason(status, body)
            assert headers.get("Retry-After") == "1"
            assert seconds < 2
        assert seconds < AUTH_TIMEOUT_SECONDS + 10
    assert channel.activities() == []


def test_bad_tokens_with_a_hung_key_endpoint_get_401_with_few_threads_and_sockets(hung):
    bot, channel, blackhole = hung
    client = EmulatorClient(bot.url, channel)
    pid = bot.pid  # the process whose /proc is read
    threads_before, sockets_before = proc_status(pid)
    peak = {"threads": threads_before, "sockets": sockets_before}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            threads, sockets = proc_status(pid)
            peak["threads"] = max(peak["threads"], threads)
            peak["sockets"] = max(peak["sockets"], sockets)
            time.sleep(0.05)

    def post(index: int) -> Tuple[int, bytes, float]:
        issuer = CHANNEL_ISSUER if index % 2 else EMULATOR_ISSUER
        activity = client.activity(text="hi", conversation_id=f"hung-{index}")
        headers = {"Authorization": f"Bearer {forged_token(issuer, service_url=channel.url)}"}
        http = RawHttp(bot.port)
        started = time.monotonic()
        try:
            status, body = http.post_json(activity, headers=headers)
        finally:
            http.close()
        return status, body, time.monotonic() - started

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, range(200)))
        assert http_get(f"{bot.url}/healthz")[0] == 200
    finally:
        sampling.set()
        sampler.join()

    for status, body, seconds in answers:
        assert status == 401, body
        assert "token" in error_reason(status, body)
        assert seconds < AUTH_TIMEOUT_SECONDS + 10
    # One shared fetch at a time, then none while it is known to fail: a handful of
    # connections to the hung endpoint for 200 requests, not one each.
    assert blackhole.accepted <= 10, blackhole.accepted
    assert peak["threads"] <= threads_before + 2, (threads_before, peak)
    # The 16 clients' connections (and as many the clients closed a moment ago),
    # and a fetch for each of the two metadata URLs: bounded by the concurrency.
    assert peak["sockets"] <= sockets_before + 2 * 16 + 4, (sockets_before, peak)
    time.sleep(1)
    threads_after, sockets_after = proc_status(pid)
    assert threads_after <= threads_before + 2 and sockets_after <= sockets_before + 2
    assert channel.activities() == []
    print(f"threads {threads_before} -> peak {peak['threads']} -> {threads_after}, sockets "
          f"{sockets_before} -> peak {peak['sockets']} -> {sockets_after}, "
          f"{blackhole.accepted} fetch connections, slowest "
          f"{max(seconds for _, _, seconds in answers):.1f} s")


def test_a_hung_key_fetch_never_stalls_other_requests(hung):
    bot, channel, _ = hung
    client = EmulatorClient(bot.url, channel)
    for _ in range(3):
        started = time.monotonic()
        assert http_get(f"{bot.url}/healthz")[0] == 200
        status, _ = client.post(client.activity(text="hi"))  # no token at all
        assert status == 401
        assert time.monotonic() - started < 2, "the event loop was blocked"


# --- A local issuer with real keys ----------------------------------------------------------


@pytest.fixture(scope="module")
def issued(tmp_path_factory) -> Iterator[Tuple[BotProcess, ChannelServer, OpenIdIssuer, Path]]:
    sqlite_path = tmp_path_factory.mktemp("issued") / "state.sqlite3"
    with Blackhole() as blackhole, OpenIdIssuer() as issuer, ChannelServer() as channel:
        env = {
            "STORAGE": "sqlite",
            "SQLITE_PATH": str(sqlite_path),
            "MicrosoftAppId": APP_ID,
            "MicrosoftAppPassword": "fake-password-for-auth-tests",
            "BotOpenIdMetadata": issuer.metadata_url,
            # Nothing leaves this machine: whatever else the bot fetches hangs.
            "HTTPS_PROXY": blackhole.url,
            "HTTP_PROXY": blackhole.url,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        with BotProcess(env) as bot:
            yield bot, channel, issuer, sqlite_path


def expect_replies(client: EmulatorClient, conversation: str, text: str) -> Dict[str, object]:
    return client.activity(text=text, conversation_id=conversation, deliveryMode="expectReplies")


def test_a_token_the_local_issuer_signs_runs_the_turn(issued):
    bot, channel, issuer, _ = issued
    client = EmulatorClient(bot.url, channel)
    http = RawHttp(bot.port)
    headers = {"Authorization": issuer.authorization(APP_ID, channel.url)}
    texts: List[List[str]] = []
    for text in ("hello", "Ada"):
        status, body = http.post_json(expect_replies(client, "signed", text), headers=headers)
        assert status == 200, body
        texts.append([reply["text"] for reply in json.loads(body)["activities"]])
    assert texts == [[WELCOME, "What is your name?"],
                     ["Thanks Ada. To see conversation data, type anything."]]
    # Fetched once (metadata, then keys) and kept for the following requests.
    assert issuer.fetches == 2


@pytest.mark.parametrize(
    "variation",
    ["another app id", "another service url", "expired", "not yet valid", "another key",
     "another issuer", "unpublished key id"],
)
def test_every_variation_of_a_signed_token_is_refused(issued, variation: str):
    bot, channel, issuer, _ = issued
    client = EmulatorClient(bot.url, channel)
    now = int(time.time())
    if variation == "another app id":
        token = issuer.channel_token("some-other-bot", channel.url)
    elif variation == "another service url":
        token = issuer.channel_token(APP_ID, "http://127.0.0.1:1")
    elif variation == "expired":
        token = issuer.channel_token(APP_ID, channel.url, exp=now - 3600, nbf=now - 7200)
    elif variation == "not yet valid":
        token = issuer.channel_token(APP_ID, channel.url, nbf=now + 3600)
    elif variation == "another key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = issuer.channel_token(APP_ID, channel.url, key=other)
    elif variation == "another issuer":
        token = issuer.channel_token(APP_ID, channel.url, iss="https://attacker.example")
    else:
        token = issuer.channel_token(APP_ID, channel.url, key_id="not-published")
    activity = expect_replies(client, f"refused-{uuid.uuid4().hex[:6]}", "hello")
    status, body = RawHttp(bot.port).post_json(activity, headers={"Authorization": f"Bearer {token}"})
    assert status == 401, body
    assert "token" in error_reason(status, body)
