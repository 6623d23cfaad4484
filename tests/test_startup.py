"""Start-up: each command imports what it uses and nothing else, so `graphnet --help` answers
before numpy could load and `graphnet validate` never pays for plotting, ONNX, dask or the
training loop."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import SEED

import graphnet

# The command line in a fresh interpreter; what it imported is written to the file in argv[1].
CODE = """
import json, sys
from graphnet.cli import cli
try:
    cli(sys.argv[2:], prog_name="graphnet")
except SystemExit as stop:
    status = stop.code
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "modules": sorted(sys.modules)}, out)
"""

TRAINING = ("graphnet.trainer", "graphnet.run", "graphnet.checkpoint", "graphnet.early_stopping")
HEAVY = ("matplotlib", "jsonschema", "dask", "distributed", "onnx", "onnxruntime")


def imported_by(tmp_path: Path, *args: str) -> set[str]:
    """The modules a fresh `graphnet ARGS...` process has imported when it exits."""
    record = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", CODE, str(record), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert record.is_file(), result.stderr
    seen = json.loads(record.read_text())
    assert seen["status"] in (0, None), result.stdout + result.stderr
    return set(seen["modules"])


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(
        m for m in modules if m in packages or m.startswith(tuple(f"{p}." for p in packages))
    )


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("run", "--help")])
def test_help_and_version_import_neither_numpy_nor_pydantic(tmp_path, args):
    """`graphnet --help` and `--version` print from the command definitions alone: no numpy,
    no pydantic, no plugin entry point read."""
    modules = imported_by(tmp_path, *args)
    assert loaded(modules, ("numpy", "pydantic", "graphnet_plugins", "yaml")) == []
    assert "importlib.metadata" not in modules  # entry points are read when a plugin is needed


def test_validate_imports_no_plotting_onnx_dask_or_training(tmp_path):
    """`graphnet validate` checks the spec and its data without loading matplotlib, jsonschema,
    dask, onnx, the network's passes or the training loop."""
    modules = imported_by(tmp_path, "validate", str(SEED))
    assert loaded(modules, HEAVY) == []
    assert loaded(modules, TRAINING) == []
    assert "graphnet_plugins.layers" in modules  # it did read the plugins


def test_every_public_name_loads_on_first_use():
    """`from graphnet import X` works for every name of `graphnet.__all__`, loaded on first use
    (so `import graphnet` stays cheap), and a name that is not there is an AttributeError."""
    for name in graphnet.__all__:
        assert getattr(graphnet, name) is not None, name
    assert set(graphnet.__all__) <= set(dir(graphnet))
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        graphnet.Nothing  # noqa: B018


def test_the_version_is_the_installed_distributions():
    """`graphnet --version` prints `graphnet.__version__`, which is the version pip installed."""
    assert graphnet.__version__ == version("graphnet")


def test_a_packages_metadata_is_read_once_for_all_its_entry_points(monkeypatch):
    """Parsing a package's metadata is slow: the registry reads graphnet's once, not once per
    built-in plugin module it registers."""
    from graphnet import registry

    reads: list[object] = []
    dists = [ep.dist for ep in registry.entry_points(group="graphnet") if ep.dist is not None]
    # the class that parses it: importlib.metadata's, or the importlib_metadata backport's once
    # something imported that (its finder then finds the packages first)
    for cls in {next(c for c in type(d).__mro__ if "metadata" in vars(c)) for d in dists}:
        real = vars(cls)["metadata"]

        def metadata(self: object, _real: property = real) -> object:
            reads.append(self)
            return _real.fget(self)  # type: ignore[misc]

        monkeypatch.setattr(cls, "metadata", property(metadata))
    built = registry._registry.__wrapped__(())  # a registry of its own, not the cached one
    assert "dense" in built.entries("layer")
    assert reads, "the registry read no package's metadata"
    assert len(reads) == len({id(dist) for dist in reads})


def test_the_startup_bench_times_every_command_against_the_bare_interpreter():
    """`bench/startup.py` (also `bench/run.py --startup`) gives each command's whole-process
    seconds and ratio to the bare interpreter, and the fixed cost of a one-epoch run."""
    script = Path(__file__).resolve().parent.parent / "bench" / "startup.py"
    result = subprocess.run(
        [sys.executable, str(script), "--repeats", "1", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout[result.stdout.index("\n[") :])
    assert [row["command"] for row in rows] == [
        *("--help", "--version", "validate", "summary", "graph"),
        *("run --set train.epochs=1", "predict", "fixed"),
    ]
    for row in rows:
        assert row["seconds"] > 0 and row["bare_s"] > 0 and row["ratio"] > 0, row
    fixed, run = rows[-1], rows[-3]
    assert fixed["seconds"] < run["seconds"]


@pytest.mark.parametrize(("standalone", "frozen"), [(True, True), (False, False)])
def test_a_command_line_process_skips_the_last_garbage_collections(standalone, frozen):
    """`graphnet` leaves what is alive at exit out of the interpreter's last full garbage
    collections (they walk every object numpy and pydantic made, to free memory the process
    gives back anyway); a program that calls the command line without ending
    (`standalone_mode=False`) keeps its own exit as it was."""
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr))\n"
        "from graphnet.cli import cli\n"
        "try:\n"
        f"    cli(['validate', sys.argv[1]], prog_name='graphnet', standalone_mode={standalone})\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(SEED)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    count = int(result.stderr.split("frozen")[-1])  # the handler registered first runs last
    assert (count > 0) is frozen
