"""`graphnet export`: a trained run as an ONNX model whose predictions are graphnet's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import graphnet
from graphnet.cli import cli
from graphnet.network import Network
from graphnet.predict import needed_inputs

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx.reference import ReferenceEvaluator  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "specs"
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


def feeds_for(network: Network, n: int, seed: int = 1) -> dict[str, np.ndarray]:
    """A batch of ``n`` samples of every input the outputs need (embedding ids whole numbers)."""
    rng = np.random.default_rng(seed)
    feeds = {
        name: rng.normal(size=(n, *network.graph.inputs[name])).astype(network.dtype)
        for name in needed_inputs(network)
    }
    for node in network.graph.nodes:
        if node.type == "embedding" and node.inputs[0] in feeds:
            vocab = network.layers[node.name].options.vocab
            ids = rng.integers(0, vocab, feeds[node.inputs[0]].shape)
            feeds[node.inputs[0]] = ids.astype(network.dtype)
    return feeds


def assert_same_predictions(run_dir: Path, model: Path) -> None:
    """onnxruntime's and onnx's reference evaluator's outputs equal `Network.predict`'s at
    batch 1 and 50: float32 to 1e-5, float64 to 1e-10, relative to the outputs' size."""
    network = graphnet.load_run(run_dir)
    onnx.checker.check_model(str(model), full_check=True)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(str(model))
    names = [o.name for o in session.get_outputs()]
    assert names == network.graph.outputs
    tol = TOLERANCE[network.dtype]
    for n in (1, 50):
        feeds = feeds_for(network, n)
        assert [i.name for i in session.get_inputs()] == list(feeds)
        want = network.predict(feeds)
        for runner in (session, reference):
            for name, got in zip(names, runner.run(None, feeds), strict=True):
                assert got.dtype == network.dtype and got.shape == want[name].shape
                scale = float(np.abs(want[name]).max())
                np.testing.assert_allclose(
                    got, want[name], rtol=tol, atol=tol * scale, err_msg=f"{name} ({runner})"
                )


def train(spec: Path | dict[str, Any], out: Path, **overrides: Any) -> Path:
    if isinstance(spec, dict):
        path = out.parent / f"{out.name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        spec = path
    graphnet.train(graphnet.load_spec(spec, {"train.epochs": 1, **overrides}), out_dir=out)
    return out


@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS.glob("*.yaml")))
def test_every_example_spec_exports(name, tmp_path):
    """Every spec in specs/, briefly trained, exports to a valid model that predicts what
    `graphnet predict` does."""
    run_dir = train(SPECS / f"{name}.yaml", tmp_path / "run")
    result = invoke("export", run_dir, "--output", tmp_path / "model.onnx")
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {tmp_path / 'model.onnx'}\n"
    assert_same_predictions(run_dir, tmp_path / "model.onnx")


def npz(directory: Path, **arrays: np.ndarray) -> str:
    np.savez(directory / "data.npz", **arrays)  # type: ignore[arg-type]
    return str(directory / "data.npz")


def zoo_spec(directory: Path, dtype: str) -> dict[str, Any]:
    """Every image, normalization and elementwise layer in one network."""
    rng = np.random.default_rng(0)
    path = npz(directory, x=rng.normal(size=(64, 6, 6, 2)), y=rng.normal(size=(64, 2)))
    nodes = [
        {
            "name": "c1",
            "type": "conv2d",
            "inputs": ["x"],
            "filters": 4,
            "kernel": 3,
            "stride": 2,
            "padding": "same",
        },
        {"name": "bn", "type": "batchnorm", "inputs": ["c1"]},
        {"name": "a1", "type": "leaky_relu", "inputs": ["bn"], "slope": 0.1},
        {"name": "p1", "type": "avgpool2d", "inputs": ["a1"], "pool": 2, "stride": 1},
        {
            "name": "c2",
            "type": "conv2d",
            "inputs": ["x"],
            "filters": 3,
            "kernel": [2, 3],
            "bias": False,
        },
        {
            "name": "c3",
            "type": "conv2d",
            "inputs": ["c2"],
            "filters": 3,
            "kernel": 2,
            "padding": "same",
        },
        {"name": "p2", "type": "maxpool2d", "inputs": ["c3"], "pool": 2},
        {"name": "g", "type": "global_avgpool2d", "inputs": ["p2"]},
        {"name": "f", "type": "flatten", "inputs": ["p1"]},
        {"name": "r", "type": "reshape", "inputs": ["f"], "shape": [4, -1]},
        {"name": "d3", "type": "dense", "inputs": ["r"], "units": 2},
        {"name": "rf", "type": "flatten", "inputs": ["d3"]},
        {"name": "j", "type": "concat", "inputs": ["rf", "g"]},
        {"name": "h", "type": "dense", "inputs": ["j"], "units": 6},
        {"name": "ln", "type": "layernorm", "inputs": ["h"]},
        {"name": "ge", "type": "gelu", "inputs": ["ln"]},
        {"name": "do", "type": "dropout", "inputs": ["ge"], "rate": 0.2},
        {"name": "s", "type": "sigmoid", "inputs": ["do"]},
        {"name": "t", "type": "tanh", "inputs": ["do"]},
        {"name": "m", "type": "multiply", "inputs": ["s", "t"]},
        {"name": "re", "type": "relu", "inputs": ["do"]},
        {"name": "a", "type": "add", "inputs": ["m", "re", "ge"]},
        {"name": "sm", "type": "softmax", "inputs": ["a"]},
        {"name": "out", "type": "dense", "inputs": ["sm"], "units": 2},
        {"name": "bn2", "type": "batchnorm", "inputs": ["out"]},
    ]
    return {
        "name": "zoo",
        "dtype": dtype,
        "data": {"source": "npz", "path": path},
        "inputs": {"x": {"shape": [6, 6, 2]}, "y": {"shape": [2]}},
        "nodes": nodes,
        "loss": {"type": "mse", "inputs": ["bn2", "y"]},
        "outputs": ["bn2", "sm"],
        "train": {"epochs": 2, "batch_size": 16, "optimizer": {"type": "adam", "lr": 0.01}},
    }


def embedding_spec(directory: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    path = npz(directory, ids=rng.integers(0, 7, (40, 5)).astype(float), y=rng.normal(size=(40, 1)))
    nodes = [
        {"name": "emb", "type": "embedding", "inputs": ["ids"], "vocab": 7, "units": 3},
        {"name": "d", "type": "dense", "inputs": ["emb"], "units": 4},
        {"name": "act", "type": "relu", "inputs": ["d"]},
        {"name": "flat", "type": "flatten", "inputs": ["act"]},
        {"name": "out", "type": "dense", "inputs": ["flat"], "units": 1},
    ]
    return {
        "name": "emb",
        "data": {"source": "npz", "path": path},
        "inputs": {"ids": {"shape": [5]}, "y": {"shape": [1]}},
        "nodes": nodes,
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {"epochs": 2, "optimizer": {"type": "adam", "lr": 0.01}},
    }


def normalized_spec(directory: Path, dtype: str) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.normal(50, 20, size=(60, 3))
    path = npz(directory, x=x, y=(x @ [1.0, -2.0, 0.5] + 300).reshape(-1, 1))
    return {
        "name": "norm",
        "dtype": dtype,
        "data": {"source": "npz", "path": path, "normalize": {"x": "minmax", "y": "standard"}},
        "inputs": {"x": {"shape": [3]}, "y": {"shape": [1]}},
        "nodes": [
            {"name": "h", "type": "dense", "inputs": ["x"], "units": 8},
            {"name": "act", "type": "tanh", "inputs": ["h"]},
            {"name": "out", "type": "dense", "inputs": ["act"], "units": 1},
        ],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {"epochs": 2, "optimizer": {"type": "adam", "lr": 0.01}},
    }


@pytest.mark.parametrize("opset", [13, None, 18, 21])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_builtin_layer_exports(tmp_path, dtype, opset):
    """Conv (same and valid, strided), pools, batchnorm's running statistics, layernorm (its
    operator from opset 17 in float32, elementary otherwise), ReduceMean's axes before and
    after opset 18, reshape, flatten and every elementwise layer
    export with predictions equal to graphnet's, two outputs at once."""
    run_dir = train(zoo_spec(tmp_path, dtype), tmp_path / "run", **{"train.epochs": 2})
    model = tmp_path / "zoo.onnx"
    graphnet.export_onnx(run_dir, model, opset)
    assert_same_predictions(run_dir, model)
    ops = {node.op_type for node in onnx.load(str(model)).graph.node}
    assert ("LayerNormalization" in ops) == (opset != 13 and dtype == "float32")


def test_embedding_exports(tmp_path):
    """An embedding's float ids are cast to integers and gathered; dense acts on the last axis."""
    run_dir = train(embedding_spec(tmp_path), tmp_path / "run")
    graphnet.export_onnx(run_dir, tmp_path / "emb.onnx")
    assert_same_predictions(run_dir, tmp_path / "emb.onnx")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalization_is_folded_in(tmp_path, dtype):
    """The model takes inputs and gives outputs in the data's own units: data.normalize is
    applied to x and undone on the output trained against the normalized y."""
    run_dir = train(normalized_spec(tmp_path, dtype), tmp_path / "run")
    graphnet.export_onnx(run_dir, tmp_path / "norm.onnx")
    assert_same_predictions(run_dir, tmp_path / "norm.onnx")
    x = np.array([[50.0, 50.0, 50.0]], dtype=dtype)
    (y,) = ort.InferenceSession(str(tmp_path / "norm.onnx")).run(None, {"x": x})
    assert 150 < y[0, 0] < 450  # the target's units (about 275), not standard scores


# -- bad inputs -----------------------------------------------------------------------------

PLUGIN = '''
import numpy as np
import graphnet

class Plain(graphnet.Layer):
    """Identity without to_onnx."""
    type = "plain"
    def forward(self, params, inputs, training):
        return inputs[0], None
    def backward(self, params, cache, grad):
        return [grad], {}

class Fancy(Plain):
    """Identity exported through an operator of opset 20."""
    type = "fancy"
    def to_onnx(self, ctx, inputs, params):
        return ctx.node("Gelu", inputs)

@graphnet.hookimpl
def graphnet_layers():
    return [Plain, Fancy]
'''


def plugin_run(tmp_path: Path, layer: str) -> tuple[Path, Path]:
    plugin = tmp_path / "identity_plugin.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    spec = normalized_spec(tmp_path, "float64")
    spec["nodes"].insert(0, {"name": "odd", "type": layer, "inputs": ["x"]})
    spec["nodes"][1]["inputs"] = ["odd"]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = invoke("run", path, "--out", tmp_path / "run", "--quiet", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    return tmp_path / "run", plugin


def test_a_layer_without_to_onnx_is_named(tmp_path):
    run_dir, plugin = plugin_run(tmp_path, "plain")
    result = invoke("export", run_dir, "--output", tmp_path / "m.onnx", "--plugin", plugin)
    assert result.exit_code == 2, result.output
    assert "node 'odd' (plain) cannot be exported" in result.output
    assert "has no to_onnx method (plugin " in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_an_opset_too_old_for_a_layer_names_it_and_the_minimum(tmp_path):
    run_dir, plugin = plugin_run(tmp_path, "fancy")
    args = ["export", run_dir, "--output", tmp_path / "m.onnx", "--plugin", plugin]
    result = invoke(*args, "--opset", "17")
    assert result.exit_code == 2, result.output
    assert "node 'odd' (fancy)" in result.output
    assert "Gelu, which needs opset 20 or newer" in result.output
    assert invoke(*args, "--opset", "20").exit_code == 0


def test_export_runs_as_a_command(seed_run, tmp_path):
    """The installed command: `python -m graphnet export` writes the model, exit 0."""
    out = tmp_path / "seed.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "graphnet", "export", str(seed_run), "--output", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {out}\n"
    assert_same_predictions(seed_run, out)


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(SPECS / "seed.yaml", tmp_path_factory.mktemp("seed") / "run")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{tmp}/nothing", "--output", "{tmp}/m.onnx"], "not a run folder"),
        (["{run}", "--output", "{run}/model.onnx"], "is a run folder; write the model elsewhere"),
        (["{run}", "--output", "{run}/weights.npz"], "is a run folder"),
        (["{run}", "--output", "{tmp}/m.onnx", "--opset", "7"], "graphnet exports opsets 13 to"),
        (["{run}"], "Missing option '--output'"),
    ],
)
def test_bad_export_commands(seed_run, tmp_path, args, expected):
    """Bad arguments are refused with exit 2, a clear message and nothing written."""
    (tmp_path / "nothing").mkdir()
    args = [a.format(tmp=tmp_path, run=seed_run) for a in args]
    result = invoke("export", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert not (seed_run / "model.onnx").exists() and not (tmp_path / "m.onnx").exists()


def test_outputs_reading_a_target_are_refused(tmp_path):
    """An output computed from a loss's target cannot be an inference model's output."""
    spec = normalized_spec(tmp_path, "float64")
    spec["nodes"].append({"name": "err", "type": "add", "inputs": ["out", "y"]})
    spec["outputs"] = ["out", "err"]
    run_dir = train(spec, tmp_path / "run")
    result = invoke("export", run_dir, "--output", tmp_path / "m.onnx")
    assert result.exit_code == 2, result.output
    assert "output 'err' depends on input 'y', a target of loss 'mse'" in result.output


def test_without_onnx_the_message_gives_the_pip_line(seed_run, tmp_path):
    code = (
        "import sys\n"
        "sys.modules['onnx'] = None\n"
        "from click.testing import CliRunner\n"
        "from graphnet.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['export', {str(seed_run)!r}, '--output', "
        f"{str(tmp_path / 'm.onnx')!r}])\n"
        "print(r.exit_code, r.output)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 ")
    assert "pip install 'graphnet[onnx]'" in result.stdout


def test_import_and_other_commands_do_not_load_onnx(seed_run, tmp_path):
    """onnx is loaded by `graphnet export` only: not by `import graphnet`, `validate`,
    `summary` or `predict`."""
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 2)))
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import graphnet\n"
        "from graphnet.cli import cli\n"
        f"for args in [['validate', {str(SPECS / 'seed.yaml')!r}], "
        f"['summary', {str(SPECS / 'seed.yaml')!r}], "
        f"['predict', {str(seed_run)!r}, '--input', {str(tmp_path / 'x.npz')!r}]]:\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_guides_scale_layer_exports(tmp_path):
    """The plugin guide's `Scale` layer, saved as a file as written, exports with its
    `to_onnx` and predicts what graphnet predicts."""
    readme = (SPECS.parent / "README.md").read_text(encoding="utf-8")
    (code,) = [
        block
        for block in readme.split("```python\n")[1:]
        if "class Scale" in block and "@graphnet.hookimpl" in block
    ]
    plugin = tmp_path / "scale.py"
    plugin.write_text(code.split("```")[0], encoding="utf-8")
    spec = normalized_spec(tmp_path, "float64")
    spec["nodes"].append({"name": "scaled", "type": "scale", "inputs": ["out"], "start": 2.0})
    spec["loss"]["inputs"] = ["scaled", "y"]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = invoke("run", path, "--out", tmp_path / "run", "--quiet", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    out = tmp_path / "scale.onnx"
    result = invoke("export", tmp_path / "run", "--output", out, "--plugin", plugin)
    assert result.exit_code == 0, result.output
    assert "Mul" in {node.op_type for node in onnx.load(str(out)).graph.node}
    network = graphnet.load_run(tmp_path / "run", plugins=[str(plugin)])
    x = feeds_for(network, 9)
    (got,) = ort.InferenceSession(str(out)).run(None, x)
    np.testing.assert_allclose(got, network.predict(x)["scaled"], rtol=1e-10)
