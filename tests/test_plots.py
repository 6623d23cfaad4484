"""Loss curves: every run draws `loss.png`, `graphnet plot` overlays runs, and a picture that
cannot be drawn never costs a finished run."""

from __future__ import annotations

import struct
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import invoke, product_spec, write_spec

import graphnet
from graphnet import plots
from graphnet.errors import GraphnetWarning

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, read from its header (fails if it is not a PNG)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def tiny_spec(folder: Path, name: str = "tiny", **train: Any) -> Path:
    """A product-data spec (40 samples, a quarter held out, 5 epochs) as ``folder/NAME.yaml``."""
    spec = product_spec(name, samples=40, validation=0.25, units=4, epochs=5, **train)
    return write_spec(folder, spec, f"{name}.yaml")


def train(folder: Path, run: str, **train: Any) -> Path:
    graphnet.train(graphnet.load_spec(tiny_spec(folder, **train)), folder / run)
    return folder / run


def legend(axes: Any) -> list[str]:
    return [text.get_text() for text in axes.get_legend().get_texts()]


# -- loss.png of every run ---------------------------------------------------------------------


def test_every_run_draws_loss_png(tmp_path):
    """A finished run has loss.png, a valid PNG, next to metrics.csv."""
    run = train(tmp_path, "run")
    width, height = png_size(run / "loss.png")
    assert width > 400 and height > 200


def test_the_cli_run_draws_loss_png_too(tmp_path, monkeypatch):
    """`graphnet run` writes loss.png into the run folder."""
    monkeypatch.chdir(tmp_path)
    result = invoke("run", tiny_spec(tmp_path), "--out", "run", "--quiet")
    assert result.exit_code == 0, result.output
    png_size(tmp_path / "run" / "loss.png")


def test_a_run_panel_per_metric_with_training_and_validation(tmp_path):
    """The loss has a panel, each metric one of its own; training and validation are two
    curves of a panel, labelled with their last value; the x axis counts epochs."""
    run = train(tmp_path, "run", metrics=["mae"])
    curves = plots.read_curves(run)
    assert curves.epochs == [1, 2, 3, 4, 5]
    fig = plots.figure([curves], "title")
    loss, mae = fig.axes
    assert loss.get_ylabel().startswith("loss") and mae.get_ylabel().startswith("mae")
    assert mae.get_xlabel() == "epoch"
    last = curves.columns["val_mae"][-1]
    assert legend(mae) == [
        f"training (last {curves.columns['mae'][-1]:.4g})",
        f"validation (last {last:.4g})",
    ]
    assert [line.get_ydata()[-1] for line in mae.get_lines()] == [
        curves.columns["mae"][-1],
        last,
    ]


@pytest.mark.parametrize(
    ("values", "scale"),
    [([3.5, 1.0, 0.2], "log"), ([1.0, 0.5, 0.2], "linear"), ([2.0, 0.0, 1.0], "linear")],
    ids=["over-a-decade", "within-a-decade", "zero"],
)
def test_log_scale_when_the_values_span_decades(values, scale):
    """A panel whose values span more than a power of ten gets a log y axis (while all are
    positive): the tail of a loss that fell from 3.5 to 0.2 stays readable."""
    curves = plots.Curves("run", [1, 2, 3], {"loss": values})
    (axes,) = plots.figure([curves], "title").axes
    assert axes.get_yscale() == scale
    assert axes.get_ylabel() == ("loss (log scale)" if scale == "log" else "loss")


def test_a_diverged_run_draws_the_epochs_it_finished(tmp_path):
    """A run that diverges keeps loss.png of its finite epochs (and still fails)."""
    rng = np.random.default_rng(0)
    x = rng.random((12, 2))
    np.savez(tmp_path / "data.npz", x=x, y=x @ np.array([[3.0], [-2.0]]))
    spec = {
        "data": {"source": "npz", "path": "data.npz"},
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": [{"name": "out", "type": "dense", "inputs": ["x"], "units": 1}],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {
            "epochs": 100,
            "batch_size": 4,
            "shuffle": False,
            "optimizer": {"type": "sgd", "lr": 30.0},
        },
    }
    path = write_spec(tmp_path, spec, "diverges.yaml")
    weights = {"out/W": np.full((2, 1), 0.5), "out/b": np.zeros(1)}
    with np.errstate(all="ignore"), pytest.raises(graphnet.TrainingError, match="diverged"):
        graphnet.train(graphnet.load_spec(path), tmp_path / "run", weights=weights)
    epochs = plots.read_curves(tmp_path / "run").epochs
    assert 1 < len(epochs) < 100
    png_size(tmp_path / "run" / "loss.png")


def test_a_failed_drawing_warns_and_the_run_finishes(tmp_path, monkeypatch):
    """A picture is never worth a finished run: if drawing fails, the run still succeeds,
    writes its weights and says why loss.png is missing."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(plots, "figure", broken)
    monkeypatch.chdir(tmp_path)
    result = invoke("run", tiny_spec(tmp_path), "--out", "run", "--quiet")
    assert result.exit_code == 0, result.output
    assert "warning: run: loss.png not drawn: RuntimeError: no fonts today" in result.stderr
    assert result.stdout.startswith("done: epoch 5")
    assert (tmp_path / "run" / "weights.npz").is_file()
    assert not (tmp_path / "run" / "loss.png").exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tmp_path, "api")
    assert [w.category for w in caught] == [GraphnetWarning]


def test_validate_and_import_do_not_load_matplotlib(tmp_path):
    """matplotlib is loaded only when a picture is drawn: not by `import graphnet`, not by
    `graphnet validate`."""
    spec = tiny_spec(tmp_path)
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import graphnet\n"
        "from graphnet.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['validate', {str(spec)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- graphnet plot ---------------------------------------------------------------------------


def test_plot_overlays_runs_in_one_picture(tmp_path, monkeypatch):
    """`graphnet plot A B --output FILE` draws both runs in one picture, a colour per run, the
    validation curves dashed, each labelled with its run folder's name."""
    first = train(tmp_path, "lr-0.05")
    second = train(tmp_path, "lr-0.2", optimizer={"type": "sgd", "lr": 0.2})
    monkeypatch.chdir(tmp_path)
    result = invoke("plot", first, second, "--output", "both.png")
    assert result.exit_code == 0, result.output
    assert result.stdout == "wrote both.png\n"
    png_size(tmp_path / "both.png")

    runs = [plots.read_curves(first, "lr-0.05"), plots.read_curves(second, "lr-0.2")]
    (axes,) = plots.figure(runs, "title").axes
    labels = legend(axes)
    assert [label.split(" (last")[0] for label in labels] == [
        "lr-0.05",
        "lr-0.05 validation",
        "lr-0.2",
        "lr-0.2 validation",
    ]
    lines = axes.get_lines()
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert [line.get_linestyle() for line in lines] == ["-", "--", "-", "--"]


def test_plot_writes_loss_png_here_by_default(tmp_path, monkeypatch):
    """Without --output the picture is loss.png in the current folder; other formats go by
    the extension."""
    run = train(tmp_path, "run")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = invoke("plot", run)
    assert result.exit_code == 0, result.output
    assert result.stdout == "wrote loss.png\n"
    png_size(here / "loss.png")
    assert invoke("plot", run, "-o", "loss.svg").exit_code == 0
    assert (here / "loss.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_plot_labels_runs_that_share_a_folder_name_by_path(tmp_path):
    """Two runs in folders of one name (a/run, b/run) are told apart by their paths."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = train(tmp_path / "a", "run"), train(tmp_path / "b", "run")
    assert plots._labels([a, b]) == [str(a), str(b)]
    assert plots._labels([a, tmp_path / "b"]) == ["run", "b"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "missing: no such folder"),
        ("file", "file: not a run folder (it is a file)"),
        ("empty", "empty: not a run folder: it has no spec.yaml and no metrics.csv"),
        ("spec-only", "spec-only: the run has no metrics.csv yet (no epoch was saved)"),
        ("header-only", "header-only: metrics.csv has no epochs yet"),
        ("bad-rows", "header-only"),
    ],
)
def test_plot_errors_name_the_folder(tmp_path, monkeypatch, setup, message):
    """A path that is not a run folder, or a run with no epochs yet, is an error naming it,
    exit status 2, no traceback; nothing is written."""
    monkeypatch.chdir(tmp_path)
    good = train(tmp_path, "good")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    (tmp_path / "spec-only").mkdir()
    (tmp_path / "spec-only" / "spec.yaml").write_text("name: x\n", encoding="utf-8")
    (tmp_path / "header-only").mkdir()
    (tmp_path / "header-only" / "metrics.csv").write_text("epoch,loss,seconds\n", encoding="utf-8")
    if setup == "bad-rows":
        (tmp_path / "header-only" / "metrics.csv").write_text(
            "epoch,loss,seconds\n1,oops,0.1\n", encoding="utf-8"
        )
        message = "header-only/metrics.csv:2: cannot be read"
        setup = "header-only"
    result = invoke("plot", good, setup)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "loss.png").exists()


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("loss.nope", "loss.nope: cannot draw a .nope file; use one of "),
        ("no/such/folder/loss.png", "no/such/folder/loss.png: cannot write the plot: "),
    ],
)
def test_plot_output_errors(tmp_path, monkeypatch, output, message):
    """An --output of an unknown format or in a folder that does not exist is an error naming
    it (exit status 2)."""
    run = train(tmp_path, "run")
    monkeypatch.chdir(tmp_path)
    result = invoke("plot", run, "--output", output)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {message}"), result.stderr


def test_plot_needs_a_run_folder():
    """`graphnet plot` with no run folder is a usage error."""
    result = invoke("plot")
    assert result.exit_code == 2
    assert "Missing argument 'RUN_DIR...'" in result.stderr


def test_try_draw_run_draws_nothing_until_a_row_is_complete(tmp_path: Path) -> None:
    """``loss.png`` of a run with no complete row of metrics.csv (none, only the header, a row
    cut short) is left out without a warning; one complete row is drawn."""
    from graphnet.plots import try_draw_run
    from graphnet.runfolder import RunFolder

    folder = RunFolder(tmp_path)
    metrics = tmp_path / "metrics.csv"
    for text in (None, "epoch,loss,seconds\n", "epoch,loss,seconds\n1,0.5,0.0"):
        if text is not None:
            metrics.write_text(text)
        assert not folder.has_rows()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try_draw_run(tmp_path)
        assert not (tmp_path / "loss.png").exists()
    metrics.write_text("epoch,loss,seconds\n1,0.5,0.01\n")
    assert folder.has_rows()
    try_draw_run(tmp_path)
    assert (tmp_path / "loss.png").is_file()
