"""Real local servers for the cloud stores: Azurite (Blob + Table) and a Cosmos DB emulator.

Both are npm packages pinned in the project's package.json (``make test`` installs
them); each starts on free 127.0.0.1 ports with a throw-away data folder and is stopped
after. Nothing needs Docker or a cloud account.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from .paths import PROJECT_ROOT
from .processes import LoggedProcess, StartError

# The well-known development keys both emulators accept (public, not secrets).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
COSMOS_EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)

AZURITE_JS = PROJECT_ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
COSMOS_JS = PROJECT_ROOT / "tools" / "cosmos_emulator.js"
START_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0


class EmulatorError(RuntimeError):
    """An emulator could not be started; the message says why and where its log is."""


@dataclass
class Emulator:
    """A running server process, its log file and the ports it announced."""

    name: str
    process: LoggedProcess
    log_path: Path
    ports: Dict[str, int]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period (Azurite does not always exit)."""
        self.process.stop(grace=STOP_GRACE_SECONDS)


@dataclass
class Azurite(Emulator):
    def connection_string(self, service: str) -> str:
        """``service``: "blob" or "table"."""
        endpoint = f"http://127.0.0.1:{self.ports[service]}/{AZURITE_ACCOUNT}"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};{service.capitalize()}Endpoint={endpoint};"
        )


@dataclass
class CosmosEmulator(Emulator):
    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['cosmos']}/"


def _require_node_script(script: Path) -> str:
    node = shutil.which("node")
    if node is None:
        raise EmulatorError("`node` is not on PATH: install Node.js 20 or later to run the emulators")
    if not script.exists():
        raise EmulatorError(f"{script} is missing: run `npm ci` (make test does) first")
    return node


def _start(name: str, command: List[str], log_path: Path, patterns: Dict[str, str]) -> tuple[LoggedProcess, Dict[str, int]]:
    """Start ``command`` (the server itself, so its PID is ours to stop) and wait
    until its log announced every port in ``patterns``."""
    ports: Dict[str, int] = {}

    def announced(log: str) -> bool:
        for service, pattern in patterns.items():
            match = re.search(pattern, log)
            if match:
                ports[service] = int(match.group(1))
        return len(ports) == len(patterns)

    process = LoggedProcess(command, log_path)
    try:
        process.start(announced, START_TIMEOUT_SECONDS, name)
    except StartError as error:
        raise EmulatorError(str(error)) from None
    return process, ports


def start_azurite(workdir: Path) -> Azurite:
    """Azurite's Blob, Queue and Table services, on loopback, telemetry off."""
    node = _require_node_script(AZURITE_JS)
    data = workdir / "azurite-data"
    data.mkdir(parents=True, exist_ok=True)
    command = [node, str(AZURITE_JS), "--disableTelemetry", "--silent", "--skipApiVersionCheck"]
    for service in ("blob", "queue", "table"):
        command += [f"--{service}Host", "127.0.0.1", f"--{service}Port", "0"]
    # --loose: azure-storage-blob 12.7 sends x-ms-encryption-* headers that
    # strict Azurite refuses on create_container.
    command += ["--loose", "--location", str(data)]
    patterns = {
        service: rf"{service.capitalize()} service is successfully listening at http://127\.0\.0\.1:(\d+)"
        for service in ("blob", "table")
    }
    log_path = workdir / "azurite.log"
    process, ports = _start("Azurite", command, log_path, patterns)
    return Azurite("Azurite", process, log_path, ports)


def start_cosmos(workdir: Path, latency_ms: int = 0) -> CosmosEmulator:
    """Our launcher of @vercel/cosmosdb-server (keeps data in memory), checking every
    request's signature against the emulator key as Azure checks it against the account's."""
    node = _require_node_script(COSMOS_JS)
    command = [node, str(COSMOS_JS), "--host", "127.0.0.1", "--port", "0", "--key", COSMOS_EMULATOR_KEY]
    if latency_ms:
        command += ["--latency-ms", str(latency_ms)]
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"cosmos-{uuid.uuid4().hex[:8]}.log"
    patterns = {"cosmos": r"ready at http://127\.0\.0\.1:(\d+)/"}
    process, ports = _start("Cosmos DB emulator", command, log_path, patterns)
    return CosmosEmulator("Cosmos DB emulator", process, log_path, ports)


def unique_name(prefix: str) -> str:
    """A fresh container/table name (lowercase letters and digits: valid everywhere)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"
