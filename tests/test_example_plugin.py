"""The example third-party plugin, examples/graphnet-scale, works as a user would install it.

graphnet and graphnet-scale are pip-installed (not editable) into a fresh virtual environment,
and the installed `graphnet` command is run as a subprocess: the entry point is found, the
plugin's types are listed under its distribution's name, its spec trains, and its own test
suite passes against the installed graphnet.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import yaml

if TYPE_CHECKING:
    from conftest import InstalledGraphnet

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path("examples") / "graphnet-scale"
SPEC = ROOT / EXAMPLE / "specs" / "scaled.yaml"


@pytest.fixture(scope="module")
def with_example(installed_graphnet: InstalledGraphnet) -> Iterator[InstalledGraphnet]:
    """The session's installed graphnet plus graphnet-scale (and pytest), removed again after."""
    installed_graphnet.pip("install", f"{installed_graphnet.source / EXAMPLE}[test]")
    yield installed_graphnet
    installed_graphnet.pip("uninstall", "--yes", "graphnet-scale")


def _rows(table: str) -> list[list[str]]:
    """The cells of a table printed by graphnet: columns are two or more spaces apart."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if line.strip()]


def test_graphnet_and_the_plugin_are_installed_not_linked(with_example: InstalledGraphnet) -> None:
    """Both packages are imported from the environment's site-packages, not from the work tree."""
    result = with_example.run(
        "python",
        "-c",
        "import graphnet, graphnet_scale; print(graphnet.__file__, graphnet_scale.__file__)",
    )
    assert result.returncode == 0, result.stderr
    for path in result.stdout.split():
        assert Path(path).resolve().is_relative_to(with_example.venv.resolve()), path


def test_plugins_lists_the_layer_and_loss_with_their_package(
    with_example: InstalledGraphnet,
) -> None:
    """`graphnet plugins` shows `gain` and `log_cosh` as coming from the graphnet-scale package."""
    result = with_example.run("graphnet", "plugins")
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout)
    assert rows[0][:3] == ["kind", "type", "package"]
    packages = {(row[0], row[1]): row[2] for row in rows[1:]}
    assert packages[("layer", "gain")] == "graphnet-scale"
    assert packages[("loss", "log_cosh")] == "graphnet-scale"
    assert packages[("layer", "dense")] == "graphnet"  # the built-ins are still there


def test_run_trains_the_example_spec(with_example: InstalledGraphnet, tmp_path: Path) -> None:
    """`graphnet run` on the example's spec exits 0 and saves each gain node's learnt `a`."""
    out = tmp_path / "run"
    result = with_example.run(
        "graphnet", "run", SPEC, "--set", "train.epochs=5", "--out", out, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: epoch 5" in result.stdout
    nodes = [n["name"] for n in yaml.safe_load(SPEC.read_text())["nodes"] if n["type"] == "gain"]
    assert nodes
    with np.load(out / "weights.npz") as weights:
        for node in nodes:
            assert weights[f"{node}/a"].shape == (1,)
            assert np.isfinite(weights[f"{node}/a"]).all()
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 5  # header, five epochs


def test_the_plugins_own_tests_pass(with_example: InstalledGraphnet) -> None:
    """The example package's test suite, run by the environment's pytest, passes."""
    result = with_example.run(
        "pytest", "-p", "no:cacheprovider", "-q", cwd=with_example.source / EXAMPLE
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", result.stdout)
    assert not re.search(r"\b(failed|skipped|error)", result.stdout)
