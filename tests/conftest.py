"""Shared helpers and fixtures of the test suite.

Plain helpers are imported by the tests with ``from conftest import ...`` (pytest puts this
folder on ``sys.path``); fixtures are found by name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

import graphnet
from graphnet import plan as plan_module
from graphnet.cli import cli
from graphnet.registry import ENV_VAR, Entry, get_registry

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SEED = ROOT / "specs" / "seed.yaml"

# -- the built-ins ---------------------------------------------------------------------------

BUILT_IN = "graphnet"  # the package the built-in plugins register under

HOOKS = [
    "graphnet_layers",
    "graphnet_losses",
    "graphnet_optimizers",
    "graphnet_data_sources",
    "graphnet_metrics",
    "graphnet_schedules",
    "graphnet_blocks",
]

# One type of each kind (two of layer, all three data sources) that `graphnet plugins` must list.
BUILT_INS = [
    ("layer", "dense"),
    ("layer", "relu"),
    ("loss", "mse"),
    ("optimizer", "sgd"),
    ("data source", "synthetic"),
    ("data source", "csv"),
    ("data source", "npz"),
    ("metric", "mae"),
    ("metric", "f1"),
    ("schedule", "cosine"),
]


def built_ins(kind: str) -> dict[str, Entry]:
    """The registered types of ``kind`` that graphnet itself ships, by name: third-party
    plugins installed beside graphnet are left out, so that they cannot change the suite."""
    return {
        name: entry
        for name, entry in sorted(get_registry().entries(kind).items())
        if entry.package == BUILT_IN
    }


def built_in(kind: str, name: str) -> type[Any]:
    """The class of the built-in ``name`` of ``kind``."""
    return built_ins(kind)[name].cls


# -- specs -------------------------------------------------------------------------------------

# Two inputs, dense 4 -> dense 1, mse: the smallest spec most tests start from.
SMALL_SPEC = """\
inputs:
  x: {shape: [2]}
  y: {shape: [1]}
nodes:
  - {name: hidden, type: dense, inputs: [x], units: 4}
  - {name: out, type: dense, inputs: [hidden], units: 1}
loss: {type: mse, inputs: [out, y]}
"""


def write_file(directory: Path, text: str, name: str) -> Path:
    """``text`` as the UTF-8 file ``directory/name``."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def write_spec(directory: Path, spec: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
    """``spec`` (text as it is, or data written as YAML in its own key order) in ``directory``."""
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    return write_file(directory, text, name)


def product_spec(
    name: str = "tiny",
    *,
    samples: int = 8,
    validation: float = 0.0,
    units: int = 3,
    epochs: int = 3,
    **train: Any,
) -> dict[str, Any]:
    """A small spec of the notebook's product data: dense ``units`` -> relu -> dense 1, mse, sgd."""
    return {
        "name": name,
        "data": {
            "source": "synthetic",
            "function": "product",
            "samples": samples,
            "validation": validation,
        },
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": [
            {"name": "hidden", "type": "dense", "inputs": ["x"], "units": units},
            {"name": "act", "type": "relu", "inputs": ["hidden"]},
            {"name": "out", "type": "dense", "inputs": ["act"], "units": 1},
        ],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {"epochs": epochs, "optimizer": {"type": "sgd", "lr": 0.05}, **train},
    }


def small_data(directory: Path, n: int = 8, name: str = "data.npz") -> Path:
    """``n`` samples of ``x`` (2 features) and ``y`` (1) drawn from U[0,1), saved as NPZ."""
    rng = np.random.default_rng(0)
    path = directory / name
    np.savez(path, x=rng.random((n, 2)), y=rng.random((n, 1)))
    return path


# -- the two kinds of pass ------------------------------------------------------------------


@contextmanager
def step_by_step() -> Iterator[None]:
    """Networks built inside never compile their plans."""
    saved = plan_module.COMPILE_NODES, plan_module.COMPILE_AFTER
    plan_module.COMPILE_NODES, plan_module.COMPILE_AFTER = 0, 10**9
    try:
        yield
    finally:
        plan_module.COMPILE_NODES, plan_module.COMPILE_AFTER = saved


def train_steps(spec: graphnet.Spec, arrays: dict[str, np.ndarray], steps: int) -> list[object]:
    """Losses, gradients and weights of ``steps`` plain gradient steps on ``arrays``."""
    network = graphnet.build(spec)
    network.params.flat *= 0.1  # 100 residual blocks of glorot weights overflow (bench/w4)
    seen: list[object] = []
    for _ in range(steps):
        values = network.values(arrays, list(network.graph.inputs))
        seen.append(network.train_step(values))
        seen.append(network.grads.flat.copy())
        network.params.flat -= 0.01 * network.grads.flat
        seen.append(network.params.flat.copy())
    return seen


def same_both_ways(spec: graphnet.Spec, arrays: dict[str, np.ndarray], steps: int = 3) -> None:
    """Compiled and step-by-step passes give bit-identical losses, gradients and weights; or
    both fail with the same kind of GraphnetError, which is raised again here. Any other
    exception propagates from whichever pass raised it."""
    outcomes: list[list[object] | graphnet.GraphnetError] = []
    for which in (nullcontext, step_by_step):
        with which():
            try:
                outcomes.append(train_steps(spec, arrays, steps))
            except graphnet.GraphnetError as error:
                outcomes.append(error)
    compiled, looped = outcomes
    if isinstance(compiled, graphnet.GraphnetError) or isinstance(looped, graphnet.GraphnetError):
        assert type(compiled) is type(looped), f"compiled: {compiled!r}; step by step: {looped!r}"
        assert isinstance(compiled, graphnet.GraphnetError)
        raise compiled
    for i, (a, b) in enumerate(zip(compiled, looped, strict=True)):
        assert np.array_equal(a, b, equal_nan=True), f"item {i} of the steps differs"  # type: ignore[arg-type]


def sample_data(spec: graphnet.Spec, n: int = 6) -> dict[str, np.ndarray]:
    """Inputs of the spec's shapes holding 0s and 1s: valid class ids, targets and features."""
    rng = np.random.default_rng(0)
    return {
        name: rng.integers(0, 2, (n, *s.shape)).astype(np.float64)
        for name, s in spec.inputs.items()
    }


# -- the command line and its files -----------------------------------------------------------


def invoke(*args: str | os.PathLike[str]) -> Result:
    """``graphnet ARGS`` through click's test runner."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def plain_env(**extra: str) -> dict[str, str]:
    """This process's environment without GRAPHNET_PLUGINS, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if k != ENV_VAR} | extra


def graphnet_process(
    *args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m graphnet ARGS`` as a real process (GRAPHNET_PLUGINS left out, ``env`` added)."""
    return subprocess.run(
        [sys.executable, "-m", "graphnet", *map(str, args)],
        cwd=cwd,
        env=plain_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows(table: str) -> list[list[str]]:
    """The cells of a table printed by graphnet: columns are two or more spaces apart."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if line.strip()]


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an NPZ file, read without pickle."""
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def assert_same_bits(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """The same keys, dtypes and bytes."""
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert a[key].tobytes() == b[key].tobytes(), key


@pytest.fixture
def no_env_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests choose their plugins; a GRAPHNET_PLUGINS of the caller's shell must not leak in."""
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def register() -> Iterator[Any]:
    """Register plugin objects on the shared registry by name; unregister them afterwards."""
    registry = get_registry()
    names: list[str] = []

    def _register(plugin: Any, name: str, package: str | None = None) -> Any:
        registry.register(plugin, name, package)
        names.append(name)
        return registry

    yield _register
    for name in names:
        registry.unregister(name)


# -- an installed graphnet -----------------------------------------------------------------------

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
