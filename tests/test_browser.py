"""The chat page in a real browser: Web Chat -> Direct Line bridge -> bot -> SQLite,
and the state panel beside it showing what was stored.

Drives Debian's Chromium (``make chromium`` installs it; Playwright cannot
download browsers here). Missing Chromium or Node is a failure, never a skip.
Set ``UPDATE_README_SCREENSHOT=1`` to also rewrite ``docs/webchat.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bots.state_bot import WELCOME
from state_engine.testing.live_bot import PROJECT_ROOT, BotProcess, free_port, http_get

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling Google services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
README_SCREENSHOT = PROJECT_ROOT / "docs" / "webchat.png"
VIEWPORT = {"width": 1440, "height": 1100}

SEND_BOX = '[data-id="webchat-sendbox-input"]'
# Scope to the bubbles: Web Chat's screen-reader live region repeats every text.
BOT_BUBBLES = ".webchat__bubble:not(.webchat__bubble--from-user) .webchat__bubble__content"
RECEIVED_AT = re.compile(r"^Message received at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$")


class WebChatServer:
    """``node webchat/server.js``: the page and the Direct Line bridge, on 127.0.0.1."""

    def __init__(self, bot_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._bot_url = bot_url
        self._log_path = log_path
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "WebChatServer":
        node = shutil.which("node")
        if node is None:
            pytest.fail("Node.js is not installed: the chat page's server needs it")
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                [node, "webchat/server.js", "--port", str(self.port), "--bot", self._bot_url],
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                if http_get(self.url, timeout=2)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"webchat/server.js did not start:\n{self._log_path.read_text()}")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `make chromium` (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def say(page: Page, text: str, bot_bubbles_after: int) -> None:
    """Type a message and wait until the bot's replies to it are on screen."""
    page.locator(SEND_BOX).fill(text)
    page.locator(SEND_BOX).press("Enter")
    expect(page.locator(BOT_BUBBLES)).to_have_count(bot_bubbles_after)


def bot_texts(page: Page) -> List[str]:
    # Web Chat renders Markdown with typographic quotes: ' becomes ’.
    return [text.replace("\u2019", "'") for text in page.locator(BOT_BUBBLES).all_inner_texts()]


def test_chat_in_the_browser_with_the_state_panel(browser: Browser, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    env = {
        "STORAGE": "sqlite",
        "SQLITE_PATH": str(tmp_path / "state.sqlite3"),
        "DEV_STATE_ENDPOINT": "true",
        "MicrosoftAppId": "",  # set, so a developer's .env cannot turn the endpoint off
    }
    bot = BotProcess(env, log_path=tmp_path / "bot.log")
    with bot, WebChatServer(bot.url, tmp_path / "webchat.log") as server:
        page = browser.new_page(viewport=VIEWPORT)
        try:
            page.goto(server.url)
            user_id = page.evaluate("localStorage.getItem('state-bot-user-id')")
            panel = page.locator("#state")

            # offline-directline's conversationUpdate names nobody, so the bot
            # greets on the first message of a conversation it never greeted.
            say(page, "hi", 2)
            say(page, "Ada", 3)
            say(page, "hello", 7)
            say(page, "add mushrooms", 8)

            texts = bot_texts(page)
            assert RECEIVED_AT.match(texts[4]), texts[4]  # the receive time, never None
            assert texts[:4] + texts[5:] == [
                WELCOME,
                "What is your name?",
                "Thanks Ada. To see conversation data, type anything.",
                "Ada sent: hello",
                "Message received from: emulator",
                "Turn 3 of this conversation's utterance log.",
                "Added mushrooms. Order: mushrooms",
            ]

            # The panel refreshes after each turn, from what is in storage.
            expect(panel.locator("#state-ids dd").first).to_have_text("emulator")  # the channel
            user_key = f"emulator/users/{user_id}"
            expect(panel.locator("#record-user-state .key")).to_contain_text(user_key)
            expect(panel.locator("#record-user-state pre")).to_contain_text('"name": "Ada"')
            expect(panel.locator("#record-conversation-state pre")).to_contain_text('"mushrooms"')
            expect(panel.locator("#record-private-conversation-state pre")).to_contain_text(
                '"message_count": 4'
            )
            expect(panel.locator("#record-utterance-log pre")).to_contain_text('"turn_number": 4')
            if os.environ.get("UPDATE_README_SCREENSHOT"):
                README_SCREENSHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=README_SCREENSHOT)

            # A new bot process knows Ada: her name was in the SQLite file.
            bot.restart()
            say(page, "still there?", 12)
            assert bot_texts(page)[8] == "Ada sent: still there?"
            expect(panel.locator("#record-utterance-log pre")).to_contain_text('"turn_number": 5')

            # Reload: a new conversation, the same user. User state follows her;
            # conversation state starts again.
            page.reload()
            say(page, "hi again", 5)
            assert bot_texts(page)[:2] == [WELCOME, "Ada sent: hi again"]
            expect(panel.locator("#record-user-state pre")).to_contain_text('"name": "Ada"')
            expect(panel.locator("#record-utterance-log pre")).to_contain_text('"turn_number": 1')
        finally:
            page.screenshot(path=ARTIFACTS / "webchat-browser-test.png")
            page.close()
            print("--- bot log ---\n" + bot.logs()[-4000:])
