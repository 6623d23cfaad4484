"""The README and specs/ stay true: every hook is in the plugin guide, the guide's examples run
as written, every spec in specs/ validates and trains, and every command is in the table."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import graphnet
from graphnet import hookspecs
from graphnet.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def section(title: str) -> str:
    """The README's text from the heading `## title` to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section '## {title}'"
    return match.group(1)


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


HOOKS = [name for name in dir(hookspecs) if name.startswith("graphnet_")]


def test_there_are_seven_hooks_each_documented_in_its_module() -> None:
    """The seven hookspecs exist, each with a docstring and a `:return:` line."""
    assert (
        sorted(
            [
                "graphnet_blocks",
                "graphnet_data_sources",
                "graphnet_layers",
                "graphnet_losses",
                "graphnet_metrics",
                "graphnet_optimizers",
                "graphnet_schedules",
            ]
        )
        == HOOKS
    )
    for name in HOOKS:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert ":return:" in doc, name


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section_in_the_plugin_guide(hook: str) -> None:
    """The guide has a heading and a runnable example per hook."""
    guide = section("Writing a plugin")
    assert re.search(rf"^### `{hook}`", guide, re.M), f"no section for {hook}"
    assert any(f"def {hook}():" in block for block in blocks(guide, "python")), (
        f"no example for {hook}"
    )


def _guide_plugins(folder: Path) -> list[Path]:
    """Each example plugin of the guide, saved in ``folder`` as a file named after its type."""
    files = []
    for code in blocks(section("Writing a plugin"), "python"):
        if "@graphnet.hookimpl" in code and "def graphnet_blocks" not in code:
            name = re.search(r'type = "(\w+)"', code)
            assert name
            path = folder / f"{name.group(1)}.py"
            path.write_text(code, encoding="utf-8")
            files.append(path)
    return files


def test_the_plugin_guide_examples_work_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each example of the guide, saved as a file, loads with --plugin and trains the guide's
    specs (the engine hints' examples too); the trained run predicts from the data source's own
    input files. (The schedule, which a spec does not name yet, is checked on its own below.)"""
    guide = section("Writing a plugin")
    files = [p for p in _guide_plugins(tmp_path) if p.stem != "halve_on_rise"]
    assert len(files) == 8
    for spec_text in blocks(guide, "yaml"):  # each spec's first line names its file
        first = re.match(r"# (\w+\.yaml)\n", spec_text)
        assert first, spec_text
        (tmp_path / first.group(1)).write_text(spec_text, encoding="utf-8")
    commands = [b.strip() for b in blocks(guide, "bash")]
    runs = [c for c in commands if c.startswith("graphnet run ")]
    assert [c.split()[2] for c in runs] == ["sine.yaml", "hints.yaml"]
    for path in files:  # the commands name every file the guide defines
        assert any(f"--plugin {path.name}" in command for command in runs), path.name
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for command in runs:
        result = runner.invoke(cli, [*command.split()[1:], "--set", "train.epochs=3"])
        assert result.exit_code == 0, result.output
    metrics = (tmp_path / "runs" / "sine" / "metrics.csv").read_text().splitlines()
    assert metrics[0] == "epoch,loss,within_tenth,max_error,seconds" and len(metrics) == 4
    with np.load(tmp_path / "runs" / "sine" / "weights.npz") as weights:
        assert weights["scaled/a"].shape == (1,)

    # the hints change no bit: the same spec trained with the optimizer that iterates the dict
    plain = "--plugin signsgd.py --set train.optimizer.type=signsgd --set train.epochs=3"
    result = runner.invoke(cli, [*runs[1].split()[1:], *plain.split(), "--out", "plain"])
    assert result.exit_code == 0, result.output
    with (
        np.load(tmp_path / "runs" / "hints" / "weights.npz") as with_hints,
        np.load(tmp_path / "plain" / "weights.npz") as without,
    ):
        assert with_hints["weighed/w"].shape == (1,)
        for key in with_hints.files:
            assert with_hints[key].tobytes() == without[key].tobytes(), key

    (predict,) = [c for c in commands if c.startswith("graphnet predict ")]
    (tmp_path / "xs.txt").write_text("0.5\n-1.0\n2.0\n", encoding="utf-8")
    result = runner.invoke(cli, predict.split()[1:])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "scaled_0" and len(lines) == 4


def test_the_guides_schedule_example_works_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's schedule, saved as a file, is listed by `graphnet plugins --plugin` and gives
    the rates the guide states."""
    guide = section("Writing a plugin")
    (path,) = [p for p in _guide_plugins(tmp_path) if p.stem == "halve_on_rise"]
    command = "graphnet plugins --plugin halve_on_rise.py"
    assert f"`{command}`" in guide
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, command.split()[1:])
    assert result.exit_code == 0, result.output
    assert re.search(r"^schedule\s+halve_on_rise\s+halve_on_rise\.py", result.output, re.M)
    namespace: dict[str, object] = {}
    exec(path.read_text(encoding="utf-8"), namespace)
    schedule = namespace["HalveOnRise"]()  # type: ignore[operator]
    history = [{"loss": v} for v in (1.0, 0.8, 0.9, 0.7, 0.75)]
    rates = [schedule.lr(e, 0.1, history[: e - 1]) for e in range(1, 7)]
    assert rates == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    assert "times 1, 1, 1, ½, ½, ¼" in guide


def test_the_guides_check_layer_snippet_passes() -> None:
    """`check_layer(Scale, {"start": 0.5}, [(3,)])` from the guide passes on the guide's Scale."""
    guide = section("Writing a plugin")
    (layer_code,) = [b for b in blocks(guide, "python") if "class Scale" in b]
    (test_code,) = [b for b in blocks(guide, "python") if "def test_scale" in b]
    namespace: dict[str, object] = {}
    exec(layer_code + "\n" + test_code, namespace)
    namespace["test_scale"]()  # type: ignore[operator]


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_validates_and_trains(spec: Path, tmp_path: Path) -> None:
    """Each gallery spec validates and trains for two epochs as it is (with --set)."""
    runner = CliRunner()
    result = runner.invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 0 and result.output.startswith("ok"), result.output
    result = runner.invoke(
        cli,
        ["run", str(spec), "--set", "train.epochs=2", "--out", str(tmp_path / "run"), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "weights.npz").is_file()


def test_every_spec_is_in_the_gallery() -> None:
    """The README's gallery names every spec in specs/."""
    gallery = section("Spec gallery")
    for spec in SPECS:
        assert f"`{spec.name}`" in gallery, spec.name


def test_the_classifier_spec_reaches_95_percent(tmp_path: Path) -> None:
    """specs/spirals.yaml, trained as it is, classifies at least 95 % of its held-out samples."""
    history = graphnet.train(
        graphnet.load_spec(ROOT / "specs" / "spirals.yaml"), out_dir=tmp_path / "run"
    )
    assert history[-1]["val_accuracy"] >= 0.95


def test_the_digits_cnn_spec_reaches_97_percent(tmp_path: Path) -> None:
    """specs/digits_cnn.yaml, trained as it is, classifies at least 97 % of its held-out digits."""
    history = graphnet.train(
        graphnet.load_spec(ROOT / "specs" / "digits_cnn.yaml"), out_dir=tmp_path / "run"
    )
    assert history[-1]["val_accuracy"] >= 0.97


def test_the_seed_spec_ends_below_a_quarter(tmp_path: Path) -> None:
    """specs/seed.yaml, the notebook's network, ends with a training loss below 0.25."""
    history = graphnet.train(
        graphnet.load_spec(ROOT / "specs" / "seed.yaml"), out_dir=tmp_path / "run"
    )
    assert len(history) == 2000 and history[-1]["loss"] < 0.25


def test_every_builtin_is_in_the_readme_table() -> None:
    """The README's table of built-in plugins names every plugin that graphnet itself registers."""
    from graphnet.registry import KINDS, get_registry

    table = section("Spec format")
    registry = get_registry()
    for kind in KINDS:
        for name, entry in registry.entries(kind).items():
            if entry.package == "graphnet":
                assert f"`{name}`" in table, f"{kind} {name}"


def test_every_command_is_in_the_readme_table() -> None:
    """The command table of the README lists every command of the CLI."""
    table = section("Commands")
    for name in cli.commands:  # type: ignore[attr-defined]
        assert f"`graphnet {name}" in table, name


def test_the_readme_python_api_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python API example of the README runs as written from the project folder."""
    (code,) = [b for b in blocks(section("Python API"), "python") if "graphnet.load_spec" in b]
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    exec(code, {})
    assert (tmp_path / "runs" / "api-demo" / "weights.npz").is_file()


def test_the_readmes_blocks_example_expands_as_it_says(tmp_path: Path) -> None:
    """The "Reusable blocks" example, with its included file and the spec's other keys added,
    expands to `body.<i>.<inner>` nodes: 100 copies of 4 nodes."""
    text = section("Spec format").split("### Reusable blocks", 1)[1]
    (example,) = blocks(text.split("- An instance", 1)[0], "yaml")
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "common.yaml").write_text("blocks: {}\n", encoding="utf-8")
    spec = tmp_path / "deep.yaml"
    spec.write_text(
        "inputs: {x: {shape: [4]}, y: {shape: [1]}}\n"
        + example
        + "loss: {type: mse, inputs: [out, y]}\n",
        encoding="utf-8",
    )
    names = [node.name for node in graphnet.load_spec(spec).nodes]
    assert len(names) == 2 + 100 * 4
    assert names[1:3] == ["body.1.fc1", "body.1.act"] and "body.100.sum" in names
