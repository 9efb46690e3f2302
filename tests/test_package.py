"""The zip that zip deploy uploads: all App Service needs to run the bot, nothing it must not get."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import List

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "package.py"
# The packages app.py wires together today; discovery must find at least these.
KNOWN_RUNTIME_PACKAGES = {"bots", "data_models", "dialogs"}
NEVER_SHIPPED_DIRS = {
    ".venv", "node_modules", "tests", "bench", "tools", ".git", "__pycache__", "data", "dist"
}


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def names(path: Path) -> List[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


@pytest.fixture(scope="module")
def bot_zip(tmp_path_factory) -> Path:
    """Built through the command line the Makefile runs."""
    output = tmp_path_factory.mktemp("dist") / "bot.zip"
    subprocess.run([sys.executable, str(TOOL), "--output", str(output)], cwd=ROOT, check=True, timeout=60)
    return output


def runtime_packages_on_disk() -> set[str]:
    return {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file() and path.name not in {"tests", "bench", "tools"}
    }


def test_zip_holds_app_requirements_and_every_runtime_package(bot_zip: Path):
    contents = set(names(bot_zip))
    assert {"app.py", "config.py", "requirements.txt"} <= contents
    packages = runtime_packages_on_disk()
    assert KNOWN_RUNTIME_PACKAGES <= packages
    for package in packages:
        assert f"{package}/__init__.py" in contents, package
        for source in (ROOT / package).rglob("*.py"):
            if "__pycache__" not in source.parts:
                assert source.relative_to(ROOT).as_posix() in contents
    # The engine that requirements.txt installs from ./engine, without its tests.
    assert "engine/pyproject.toml" in contents
    for source in (ROOT / "engine" / "state_engine").rglob("*.py"):
        if "__pycache__" not in source.parts:
            assert source.relative_to(ROOT).as_posix() in contents
    assert not any(name.startswith("engine/tests/") for name in contents)


def test_zip_holds_nothing_it_must_not(bot_zip: Path):
    for name in names(bot_zip):
        path = PurePosixPath(name)
        assert not NEVER_SHIPPED_DIRS & set(path.parts), name
        assert path.name != ".env", name
        assert not path.name.endswith((".sqlite3", ".pyc")), name


def test_the_rule_keeps_out_secrets_data_caches_and_dev_folders(tmp_path: Path):
    """On a planted tree, so each thing that must stay out is really there to be left out."""
    files = {
        "app.py": "", "config.py": "", "requirements.txt": "", "conftest.py": "", "test_smoke.py": "",
        ".env": "MicrosoftAppPassword=secret",
        ".venv/lib/site.py": "", "node_modules/x/index.js": "", ".git/config": "",
        "data/bot-state.sqlite3": "", "dist/bot.zip": "",
        "tests/__init__.py": "", "bench/__init__.py": "", "tools/__init__.py": "",
        "scratch/notes.py": "",
        "newpkg/__init__.py": "", "newpkg/static/index.html": "<p>",
        "newpkg/__pycache__/x.cpython-311.pyc": "", "newpkg/local.sqlite3": "", "newpkg/.env": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    output = load_tool().build(tmp_path / "out" / "bot.zip", root=tmp_path)
    assert sorted(names(output)) == sorted(
        ["app.py", "config.py", "requirements.txt", "newpkg/__init__.py", "newpkg/static/index.html"]
    )


def test_the_unpacked_zip_imports_the_app_without_the_source_tree(bot_zip: Path, tmp_path: Path):
    """What App Service runs: the app imports from the unpacked zip alone."""
    with zipfile.ZipFile(bot_zip) as archive:
        archive.extractall(tmp_path)
    probe = (
        "import sys, app; from aiohttp import web; "
        "assert isinstance(app.APP, web.Application); "
        "files = {m: getattr(mod, '__file__', None) or '' for m, mod in list(sys.modules.items())}; "
        f"leaked = [m for m, f in files.items() if f.startswith({str(ROOT) + os.sep!r}) "
        "and not f.startswith(sys.prefix + '/')]; "
        "sys.exit('imported from the source tree: %s' % leaked if leaked else 0)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("Microsoft")}
    # The engine as App Service installs it from the zip's ./engine, not this checkout's.
    env.update(STORAGE="memory", MicrosoftAppId="", MicrosoftAppPassword="", PYTHONPATH="engine")
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
