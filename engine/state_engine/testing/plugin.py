"""The engine's pytest plugin (registered by its entry point): real emulators as fixtures.

``azurite`` and ``cosmos_emulator`` start once per session on free loopback ports;
``backend_env("table")`` gives settings for a fresh table, starting what it needs;
``small_disk`` is a tmpfs of its own to fill (tests run as root), with ``fill`` to fill it;
``freezable_disk`` a file system of its own whose writes can be made to wait.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest

from .backends import HOOKS, backend_env as env_for_backend
from .emulators import Azurite, CosmosEmulator, start_azurite, start_cosmos


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite (Blob + Table) on free loopback ports, for the whole session."""
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cosmos_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CosmosEmulator]:
    """The Cosmos DB emulator on a free loopback port, for the whole session."""
    server = start_cosmos(tmp_path_factory.mktemp("cosmos"))
    yield server
    server.stop()


@pytest.fixture
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Dict[str, str]]:
    """``backend_env("table")``: settings putting a store or the bot on that backend, on a
    fresh container, table or file; starts the emulator it needs on first use."""

    def env_for(name: str) -> Dict[str, str]:
        fixture = {"azurite": "azurite", "cosmos": "cosmos_emulator"}.get(HOOKS[name].emulator or "")
        emulator = request.getfixturevalue(fixture) if fixture else None
        return env_for_backend(name, emulator, tmp_path)

    return env_for


def _run_or_skip(command: List[str], why: str) -> None:
    """Run ``command``; skip the test, saying ``why``, if it is missing or refused (root only)."""
    if shutil.which(command[0]) is None:
        pytest.skip(f"no `{command[0]}` command: {why}")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"{why}: {' '.join(command)} failed ({done.stderr.strip()})")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs of our own, to fill without filling the machine's disk."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    _run_or_skip(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], "cannot make a small disk to fill")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@dataclass
class FreezableDisk:
    """A mounted file system whose writes ``freeze()`` makes wait, as on a disk that
    stopped answering, until ``thaw()``. (SQLite's readers wait too: in WAL mode they
    write to the shared-memory file.)"""

    path: Path

    def freeze(self) -> None:
        subprocess.run(["fsfreeze", "--freeze", str(self.path)], check=True)

    def thaw(self) -> None:
        subprocess.run(["fsfreeze", "--unfreeze", str(self.path)], capture_output=True)


@pytest.fixture
def freezable_disk(tmp_path: Path) -> Iterator[FreezableDisk]:
    """A 64 MiB ext4 file system of our own, in a file mounted as a loop device (tests run
    as root); thawed and unmounted afterwards, whatever the test left."""
    if shutil.which("fsfreeze") is None:
        pytest.skip("no `fsfreeze` command: cannot freeze a file system")
    image, folder = tmp_path / "disk.img", tmp_path / "freezable-disk"
    folder.mkdir()
    why = "cannot make a file system to freeze"
    _run_or_skip(["truncate", "--size=64M", str(image)], why)
    _run_or_skip(["mkfs.ext4", "-q", "-F", str(image)], why)
    _run_or_skip(["mount", "-o", "loop", str(image), str(folder)], why)
    disk = FreezableDisk(folder)
    try:
        yield disk
    finally:
        disk.thaw()
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)  # a process still has a file open


def fill(path: Path) -> None:
    """Write ``path`` until the disk refuses another byte."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
        try:
            while True:
                filler.write(b"\0")
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
