"""graphnet as a user installs it: `pip install .` (not editable) into a fresh venv, then the
installed `graphnet` command run as a real process.

The environment is the session's `installed_graphnet` (tests/conftest.py): one venv per test
session, built from a copy of the repository without git, build output or caches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import BUILT_INS, SMALL_SPEC, InstalledGraphnet, rows

BAD_SPEC = SMALL_SPEC.replace("inputs: [hidden]", "inputs: [hiden]")


def seed(installed: InstalledGraphnet) -> Path:
    return installed.source / "specs" / "seed.yaml"


def test_installed_package_is_imported_from_the_venv(installed_graphnet: InstalledGraphnet):
    """The installed graphnet and its plugins live in the venv, not in the work tree."""
    result = installed_graphnet.run(
        "python",
        "-c",
        "import graphnet, graphnet_plugins; print(graphnet.__file__); "
        "print(graphnet_plugins.__file__)",
    )
    assert result.returncode == 0, result.stderr
    for path in result.stdout.split():
        assert Path(path).resolve().is_relative_to(installed_graphnet.venv.resolve()), path


def test_plugins_are_not_installed_as_a_bare_plugins_package(
    installed_graphnet: InstalledGraphnet,
):
    """The built-ins install as `graphnet_plugins`, never as a top-level `plugins` package."""
    result = installed_graphnet.run(
        "python", "-c", "import importlib.util; print(importlib.util.find_spec('plugins'))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"


def test_installed_plugins_lists_the_built_ins(installed_graphnet: InstalledGraphnet):
    """`graphnet plugins` finds the built-ins through the installed entry points, package `graphnet`."""
    result = installed_graphnet.run("graphnet", "plugins")
    assert result.returncode == 0, result.stderr
    table = [row[:3] for row in rows(result.stdout)]
    assert table[0] == ["kind", "type", "package"]
    for kind, name in BUILT_INS:
        assert [kind, name, "graphnet"] in table, (kind, name)


def test_installed_run_trains_the_seed_spec(installed_graphnet: InstalledGraphnet, tmp_path):
    """`graphnet run specs/seed.yaml --set train.epochs=5 --out DIR` exits 0 and writes weights."""
    out = tmp_path / "run"
    result = installed_graphnet.run(
        "graphnet",
        "run",
        seed(installed_graphnet),
        "--set",
        "train.epochs=5",
        "--out",
        out,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("done: epoch 5")
    with np.load(out / "weights.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == ["hidden/W", "hidden/b", "out/W", "out/b"]
        assert archive["hidden/W"].shape == (2, 5)
    assert (out / "spec.yaml").is_file()
    assert len((out / "metrics.csv").read_text(encoding="utf-8").splitlines()) == 6


def test_installed_validate_and_summary(installed_graphnet: InstalledGraphnet, tmp_path):
    """`graphnet validate` prints `ok` and `graphnet summary` its table, as installed."""
    validate = installed_graphnet.run("graphnet", "validate", seed(installed_graphnet))
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.startswith("ok")
    summary = installed_graphnet.run("graphnet", "summary", seed(installed_graphnet))
    assert summary.returncode == 0, summary.stderr
    assert ["hidden", "dense", "x", "[5]", "15"] in rows(summary.stdout)


def test_installed_validate_reports_a_bad_spec(installed_graphnet: InstalledGraphnet, tmp_path):
    """A bad spec exits 2 with `file:line: path: message` and no traceback."""
    (tmp_path / "bad.yaml").write_text(BAD_SPEC, encoding="utf-8")
    result = installed_graphnet.run("graphnet", "validate", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: bad.yaml:6: nodes[1].inputs: unknown node 'hiden' (did you mean 'hidden'?)\n"
    )
    assert "Traceback" not in result.stderr


def test_installed_python_dash_m_graphnet(installed_graphnet: InstalledGraphnet):
    """`python -m graphnet --help` works in the installed environment."""
    result = installed_graphnet.run("python", "-m", "graphnet", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: graphnet ")
