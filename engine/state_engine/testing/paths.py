"""Where the project using the engine keeps its npm servers and its app."""

from __future__ import annotations

import os
from pathlib import Path


def find_project_root() -> Path:
    """``STATE_ENGINE_PROJECT_ROOT``, else the nearest folder up from here or the
    working directory that holds a ``package.json`` (where ``npm ci`` put the servers)."""
    configured = os.environ.get("STATE_ENGINE_PROJECT_ROOT")
    if configured:
        return Path(configured).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "package.json").exists():
                return folder
    return Path.cwd()


PROJECT_ROOT = find_project_root()
