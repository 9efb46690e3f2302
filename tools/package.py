"""Build ``dist/bot.zip``: what App Service's zip deploy needs, and nothing else.

App Service installs requirements.txt itself, so the zip holds source only, chosen by an
include rule (packages by their ``__init__.py``, and the engine): a virtualenv, a ``.env``
or a local SQLite file can never slip in.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path
from typing import Iterator, List

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "dist" / "bot.zip"

# Top-level files App Service needs besides the modules found below.
TOP_LEVEL_FILES = ("requirements.txt",)
# Packages that exist for development only.
NON_RUNTIME_PACKAGES = frozenset({"tests", "bench", "tools"})
# The engine, which requirements.txt installs from ./engine: its project files and package.
ENGINE_FILES = ("engine/pyproject.toml", "engine/README.md")
ENGINE_PACKAGE = "engine/state_engine"
# Never shipped from inside a package: caches, local data, secrets.
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".sqlite3", ".sqlite3-journal", ".sqlite3-wal", ".sqlite3-shm", ".log")
SKIPPED_NAMES = frozenset({".env", ".DS_Store"})


def runtime_packages(root: Path = ROOT) -> List[str]:
    """Top-level directories with an ``__init__.py``, except development-only ones."""
    return sorted(
        path.name
        for path in root.iterdir()
        if path.is_dir()
        and (path / "__init__.py").is_file()
        and path.name not in NON_RUNTIME_PACKAGES
    )


def _top_level_modules(root: Path) -> List[Path]:
    return sorted(
        path
        for path in root.glob("*.py")
        if path.name != "conftest.py" and not path.name.startswith("test_")
    )


def _package_files(package: Path) -> Iterator[Path]:
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if not path.is_file() or any(part in SKIPPED_DIRS for part in relative.parts):
            continue
        if path.name in SKIPPED_NAMES or path.name.endswith(SKIPPED_SUFFIXES):
            continue
        yield path


def runtime_files(root: Path = ROOT) -> List[Path]:
    """Every file the zip holds, in a stable order."""
    files = [root / name for name in TOP_LEVEL_FILES] + _top_level_modules(root)
    for package in runtime_packages(root):
        files.extend(_package_files(root / package))
    if (root / ENGINE_PACKAGE).is_dir():
        files += [root / name for name in ENGINE_FILES if (root / name).is_file()]
        files.extend(_package_files(root / ENGINE_PACKAGE))
    return files


def build(output: Path = DEFAULT_OUTPUT, root: Path = ROOT) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(".zip.tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in runtime_files(root):
            archive.write(path, path.relative_to(root).as_posix())
    temporary.replace(output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    output = build(parser.parse_args().output)
    print(f"{output} ({output.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
