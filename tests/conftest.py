"""Shared fixtures of the test suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a copy of the repository leaves out: what git ignores, and git itself.
NOT_COPIED = (
    ".git",
    ".venv",
    "runs",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
)

# Variables that would let the outer environment leak into the installed one.
LEAKY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "GRAPHNET_PLUGINS")


@dataclass(frozen=True)
class InstalledGraphnet:
    """A virtual environment with graphnet installed from a clean copy of this repository.

    ``source`` is that copy (the repository without ``.git``, build output and caches): install
    other packages from it, not from the work tree, so that their builds leave nothing behind.
    """

    venv: Path
    source: Path

    @property
    def bin(self) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in LEAKY}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        env["PIP_NO_INPUT"] = "1"
        return env

    def run(
        self,
        command: str,
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` from the environment's scripts (``graphnet``, ``pytest``) and capture it."""
        return subprocess.run(
            [str(self.bin / command), *map(str, args)],
            cwd=cwd or self.venv,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pip(self, *args: str | os.PathLike[str]) -> None:
        """``pip ARGS`` in the environment; a failure fails the test with pip's output."""
        result = subprocess.run(
            [str(self.python), "-m", "pip", "--quiet", *map(str, args)],
            cwd=self.venv,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"pip {' '.join(map(str, args))} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
                pytrace=False,
            )


def copy_repository(destination: Path, root: Path = ROOT, skip: Sequence[str] = NOT_COPIED) -> Path:
    """Copy the work tree to ``destination`` without git, virtual environments, builds or caches."""
    shutil.copytree(root, destination, ignore=shutil.ignore_patterns(*skip))
    return destination


@pytest.fixture(scope="session")
def installed_graphnet(tmp_path_factory: pytest.TempPathFactory) -> InstalledGraphnet:
    """One fresh venv per session with graphnet installed as a user would: ``pip install .``.

    Not editable, and from a copy of the repository, so that the tests see what a wheel
    contains and nothing of the work tree. Built once; tests that install more into it
    should remove it again when done (see ``tests/test_example_plugin.py``).
    """
    base = tmp_path_factory.mktemp("installed")
    source = copy_repository(base / "graphnet")
    installed = InstalledGraphnet(venv=base / "venv", source=source)
    subprocess.run([sys.executable, "-m", "venv", installed.venv], check=True, timeout=300)
    installed.pip("install", source)
    return installed
