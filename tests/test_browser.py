"""``make chat`` end to end: the command itself (ports, Ctrl+C), and its page in a
real browser: Web Chat -> Direct Line bridge -> bot -> SQLite, with the state
panel beside it showing what was stored, across restarts and reloads.

Drives Debian's Chromium (``make chromium`` installs it; Playwright cannot
download browsers here). Missing Chromium or Node is a failure, never a skip.
Screenshots go to ``test-artifacts/``; set ``UPDATE_README_SCREENSHOT=1`` to also
rewrite ``docs/webchat.png`` from the 1280x800 one.
"""

from __future__ import annotations

import importlib.util
import os
import pty
import re
import select
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator, List, Optional

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from bots.state_bot import WELCOME
from tests.chat_page import ADDRESS_LINE, ChatCommand
from state_engine.testing.live_bot import PROJECT_ROOT, ChannelServer

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
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 420, "height": 800}

SEND_BOX = '[data-id="webchat-sendbox-input"]'
# Scope to the bubbles: Web Chat's screen-reader live region repeats every text.
BOT_BUBBLES = ".webchat__bubble:not(.webchat__bubble--from-user) .webchat__bubble__content"
RECEIVED_AT = re.compile(r"^Message received at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$")
CARDS = ["user-state", "conversation-state", "private-conversation-state", "utterance-log"]
# Two shared cores run the bot, the bridge and Chromium: give each wait some room.
expect.set_options(timeout=10_000)


def load_chat_tool() -> ModuleType:
    """tools/chat.py as a module, for its checks (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("chat_tool", PROJECT_ROOT / "tools" / "chat.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def sqlite_env(tmp_path: Path) -> Dict[str, str]:
    return {"STORAGE": "sqlite", "SQLITE_PATH": str(tmp_path / "state.sqlite3")}


# ---- the command ------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["PORT", "WEBCHAT_PORT"])
def test_a_port_in_use_is_one_line_naming_its_setting(setting: str, tmp_path: Path) -> None:
    chat = ChatCommand(sqlite_env(tmp_path))
    port = chat.bot_port if setting == "PORT" else chat.page_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = chat.run()
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"make chat: {setting}={port} ({'the bot' if setting == 'PORT' else 'the page'}) is in use "
        f"on 127.0.0.1: stop what listens there or set {setting} to a free port."
    ]
    assert ADDRESS_LINE not in result.stdout


def test_another_program_on_the_bot_port_is_not_taken_for_the_bot() -> None:
    """What answers must be this bot: a server answering 404 everywhere is not."""
    with ChannelServer() as other:
        reason = load_chat_tool().not_this_bot(other.url)
    assert reason == f"{other.url}/healthz answered 404 but not as this bot does"


def read_terminal(terminal: int, until: Optional[bytes], timeout: float) -> bytes:
    """What the terminal shows until ``until`` appears (None: until no process has
    it open any more) or ``timeout`` seconds pass."""
    output = b""
    deadline = time.monotonic() + timeout
    while (until is None or until not in output) and time.monotonic() < deadline:
        if not select.select([terminal], [], [], 0.5)[0]:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the pty closed: everything in it has exited
            break
        if not chunk:
            break
        output += chunk
    return output


def wait_for_exit(pid: int, timeout: float) -> Optional[int]:
    """The exit code of child ``pid``, or None if it is still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    return None


def test_ctrl_c_on_make_chat_exits_0_without_an_error(tmp_path: Path) -> None:
    """In a terminal (a pty), as a person runs it: Ctrl+C ends `make chat` with 0."""
    make = shutil.which("make")
    assert make is not None, "make is not installed"
    chat = ChatCommand(sqlite_env(tmp_path))
    pid, terminal = pty.fork()
    if pid == 0:  # the child: make, leading the pty's session
        os.chdir(PROJECT_ROOT)
        os.execve(make, [make, "--no-print-directory", "chat"], chat.env)
    exit_code = None
    try:
        output = read_terminal(terminal, ADDRESS_LINE.encode(), 40)
        assert ADDRESS_LINE.encode() in output, output.decode(errors="replace")
        os.write(terminal, b"\x03")  # Ctrl+C: the terminal signals its foreground group
        output += read_terminal(terminal, None, 20)
        exit_code = wait_for_exit(pid, 10)
    finally:
        os.close(terminal)  # a hang-up, which `make chat` answers by stopping
        if exit_code is None and wait_for_exit(pid, 20) is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert exit_code == 0, text
    assert "Error" not in text and "Interrupt" not in text, text
    assert "Stopped the chat page and the bot." in text


# ---- the page -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `make chromium` "
            "(apt-get install chromium)"
        )
    if shutil.which("node") is None:
        pytest.fail("Node.js is not installed: the chat page's server needs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ChatCommand]:
    chat = ChatCommand(sqlite_env(tmp_path), log_path=tmp_path / "chat.log")
    with chat:
        yield chat
    print("--- make chat's log ---\n" + chat.logs()[-4000:])


def say(page: Page, text: str, bot_bubbles_after: int) -> None:
    """Type a message and wait until the bot's replies to it are on screen."""
    page.locator(SEND_BOX).fill(text)
    page.locator(SEND_BOX).press("Enter")
    expect(page.locator(BOT_BUBBLES)).to_have_count(bot_bubbles_after)


def bot_texts(page: Page) -> List[str]:
    # Web Chat renders Markdown with typographic quotes: ' becomes ’.
    return [text.replace("\u2019", "'") for text in page.locator(BOT_BUBBLES).all_inner_texts()]


def field(panel: Locator, card: str, path: str) -> Locator:
    """A value in the panel, by record card and path (``UserProfile.name``)."""
    return panel.locator(f'#record-{card} [data-field="{path}"]')


def boxes(page: Page, selectors: List[str]) -> Dict[str, Dict[str, float]]:
    """Each element's box in the viewport, measured at one moment (the panel
    re-renders after every turn)."""
    return page.evaluate(
        """selectors => Object.fromEntries(selectors.map(selector => {
             const box = document.querySelector(selector).getBoundingClientRect();
             return [selector, {x: box.x, y: box.y, width: box.width, height: box.height}];
           }))""",
        selectors,
    )


def assert_within_viewport(page: Page, selectors: List[str]) -> None:
    viewport = page.viewport_size
    for selector, box in boxes(page, selectors).items():
        assert box["width"] > 0 and box["height"] > 0, f"{selector} is not shown"
        assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= viewport["width"] + 0.5, (selector, box)
        assert box["y"] + box["height"] <= viewport["height"] + 0.5, (selector, box)


def stored(page: Page, key: str) -> str:
    return page.evaluate(f"localStorage.getItem('state-bot-{key}-id')")


@pytest.mark.browser
def test_the_conversation_survives_restarts_and_reloads(
    browser: Browser, chat: ChatCommand
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport=WIDE)
    panel = page.locator("#state")
    try:
        page.goto(chat.url)
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")

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
            "Message received from: webchat",
            "Turn 3 of this conversation's utterance log.",
            "Added mushrooms. Order: mushrooms",
        ]
        # The profile dialog, left waiting for the age: its stack is in conversation state.
        say(page, "profile", 9)
        say(page, "Ada", 10)
        user_id, conversation_id = stored(page, "user"), stored(page, "conversation")
        assert user_id and conversation_id

        # The panel: each record readable, under its key, with no codec tags in sight.
        expect(panel.locator('[data-id="channel"] dd')).to_have_text("webchat")
        expect(panel.locator('[data-id="conversation"] dd')).to_have_text(conversation_id)
        expect(panel.locator("#record-user-state .key")).to_have_text(f"webchat/users/{user_id}")
        expect(field(panel, "user-state", "UserProfile.name")).to_have_text('"Ada"')
        expect(field(panel, "conversation-state", "PizzaOrder.toppings.0")).to_have_text(
            '"mushrooms"'
        )
        expect(
            field(panel, "private-conversation-state", "PrivateConversationData.message_count")
        ).to_have_text("6")
        expect(field(panel, "utterance-log", "turn_number")).to_have_text("6")
        expect(panel.locator("#record-utterance-log .etag")).not_to_be_empty()
        records_text = panel.locator("#records").inner_text()
        assert "$value" not in records_text and "$type" not in records_text, records_text

        # The dialog stack: folded to one line, unfolded on a click.
        dialog = panel.locator(
            '#record-private-conversation-state [data-property="DialogState"] details'
        )
        expect(dialog).not_to_have_attribute("open", "")
        expect(dialog.locator(".summary")).to_have_text(
            "ProfileDialog › step 2 › waiting in NumberPrompt: "
            "How old are you? (type 'skip' to leave it out)"
        )
        dialog.locator("summary").click()
        expect(dialog.locator('[data-field="DialogState._dialog_stack.0.id"]')).to_have_text(
            '"ProfileDialog"'
        )
        dialog.locator("summary").click()
        expect(dialog).not_to_have_attribute("open", "")

        # 1280x800: the chat and every record on screen, nothing to scroll.
        assert_within_viewport(page, ["#chat", "#state"] + [f"#record-{card}" for card in CARDS])
        assert panel.evaluate("node => node.scrollHeight <= node.clientHeight"), "the panel scrolls"
        page.screenshot(path=ARTIFACTS / "webchat-1280x800.png")
        if os.environ.get("UPDATE_README_SCREENSHOT"):
            shutil.copyfile(ARTIFACTS / "webchat-1280x800.png", README_SCREENSHOT)

        # Ctrl+C on `make chat` and run it again, under the open page: a new bot
        # and a new bridge. The page says it is reconnecting, then connected.
        assert chat.stop() == 0
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        expect(page.locator(SEND_BOX)).to_be_disabled()
        chat.start()
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")

        # The same conversation: the dialog goes on where it waited, the order is there.
        say(page, "36", 11)
        say(page, "yes", 12)
        say(page, "order", 13)
        assert bot_texts(page)[10:] == [
            "Save this profile? Ada, age 36",
            "Profile saved: Ada, age 36.",
            "Order: mushrooms",
        ]
        assert (stored(page, "user"), stored(page, "conversation")) == (user_id, conversation_id)
        expect(panel.locator('[data-id="conversation"] dd')).to_have_text(conversation_id)
        expect(field(panel, "utterance-log", "turn_number")).to_have_text("9")
        expect(page.get_by_text("Send failed")).to_have_count(0)

        # Reload: still the same conversation. The bridge shows what it holds (all
        # since it started); the bot's state holds the rest.
        page.reload()
        expect(page.locator(BOT_BUBBLES)).to_have_count(3)
        say(page, "order", 4)
        assert bot_texts(page)[3] == "Order: mushrooms"
        assert (stored(page, "user"), stored(page, "conversation")) == (user_id, conversation_id)
        expect(field(panel, "user-state", "UserProfile.age")).to_have_text("36")

        # A new conversation on request: user state follows, conversation state starts again.
        page.get_by_role("button", name="New conversation").click()
        say(page, "hi again", 5)
        assert bot_texts(page)[:2] == [WELCOME, "Ada sent: hi again"]
        assert stored(page, "conversation") != conversation_id
        assert stored(page, "user") == user_id
        expect(field(panel, "user-state", "UserProfile.name")).to_have_text('"Ada"')
        expect(field(panel, "utterance-log", "turn_number")).to_have_text("1")
        order = panel.locator('#record-conversation-state [data-property="PizzaOrder"]')
        expect(order).to_have_count(0)
    finally:
        page.screenshot(path=ARTIFACTS / "webchat-browser-test.png")
        page.close()


@pytest.mark.browser
def test_a_narrow_screen_stacks_the_chat_above_the_state(
    browser: Browser, chat: ChatCommand
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport=NARROW)
    try:
        page.goto(chat.url)
        say(page, "hi", 2)
        say(page, "Ada", 3)
        say(page, "add mushrooms", 4)
        panel = page.locator("#state")
        expect(field(panel, "conversation-state", "PizzaOrder.toppings.0")).to_have_text(
            '"mushrooms"'
        )

        cards = [f"#record-{card}" for card in CARDS]
        measured = boxes(page, ["#chat", "#state"] + cards)
        chat_box, state_box = measured["#chat"], measured["#state"]
        assert chat_box["y"] + chat_box["height"] <= state_box["y"], (chat_box, state_box)
        for box in (chat_box, state_box):
            assert box["width"] >= NARROW["width"] - 40, box
        for card in cards:  # full-width cards: words, not one letter per line
            assert measured[card]["width"] >= 340, (card, measured[card])
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
        page.screenshot(path=ARTIFACTS / "webchat-420x800.png", full_page=True)
    finally:
        page.close()

