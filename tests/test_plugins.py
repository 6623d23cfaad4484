"""Plugins: the hookspecs, the built-ins, registering a layer, and loading plugin files.

Test plugins are registered under a name and unregistered after the test (llm's conftest
style), so the shared registry is left as it was found.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import BUILT_INS, HOOKS, invoke, write_file, write_spec
from pydantic import BaseModel, ConfigDict

import graphnet
from graphnet import hookspecs
from graphnet.cli import cli
from graphnet.registry import ENV_VAR, KINDS, get_registry

# The test layer is `scaling`, not `scale`: the plugin guide's example registers `scale`, and the
# suite must pass with any third-party plugin installed.
SPEC = """\
inputs:
  x: {shape: [2]}
  y: {shape: [2]}
nodes:
  - {name: s, type: scaling, inputs: [x], start: 2.0}
loss: {type: mse, inputs: [s, y]}
"""

RELU_SPEC = SPEC.replace("type: scaling, inputs: [x], start: 2.0", "type: relu, inputs: [x]")

SCALE_PLUGIN = '''
import numpy as np
from pydantic import BaseModel, ConfigDict

import graphnet


class Scale(graphnet.Layer):
    """y = a·x with one learnable scalar a."""

    type = "scaling"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        start: float = 1.0

    def init_params(self, input_shapes, rng):
        return {"a": np.full((1,), self.options.start)}

    def forward(self, params, inputs, training):
        (x,) = inputs
        return params["a"] * x, x

    def backward(self, params, cache, grad):
        return [params["a"] * grad], {"a": np.sum(grad * cache, keepdims=True).reshape(1)}


@graphnet.hookimpl
def graphnet_layers():
    return [Scale]
'''


class Scale(graphnet.Layer):
    """y = a·x with one learnable scalar a."""

    type = "scaling"

    class Options(BaseModel):
        model_config = ConfigDict(extra="allow")  # the engine forbids unknown options anyway
        start: float = 1.0

    def init_params(self, input_shapes: Any, rng: np.random.Generator) -> dict[str, Any]:
        return {"a": np.full((1,), self.options.start)}

    def forward(self, params: Any, inputs: Any, training: bool) -> tuple[Any, Any]:
        (x,) = inputs
        return params["a"] * x, x

    def backward(self, params: Any, cache: Any, grad: Any) -> tuple[list[Any], dict[str, Any]]:
        return [params["a"] * grad], {"a": np.sum(grad * cache, keepdims=True).reshape(1)}


class ScalePlugin:
    @graphnet.hookimpl
    def graphnet_layers(self) -> list[type[graphnet.Layer]]:
        return [Scale]


class FakeDense(graphnet.Layer):
    """A second layer that claims the name `Dense`."""

    type = "Dense"


class DuplicatePlugin:
    @graphnet.hookimpl
    def graphnet_layers(self) -> list[type[graphnet.Layer]]:
        return [FakeDense]


class NotALayer:
    type = "not_a_layer"


class NonLayerPlugin:
    @graphnet.hookimpl
    def graphnet_layers(self) -> list[type[Any]]:
        return [NotALayer]


class LayerAsLossPlugin:
    @graphnet.hookimpl
    def graphnet_losses(self) -> list[type[Any]]:
        return [Scale]


class Nameless(graphnet.Layer):
    """A layer without a `type`."""


class NamelessPlugin:
    @graphnet.hookimpl
    def graphnet_layers(self) -> list[type[graphnet.Layer]]:
        return [Nameless]


class FailingPlugin:
    @graphnet.hookimpl
    def graphnet_layers(self) -> list[type[graphnet.Layer]]:
        raise RuntimeError("hook exploded")


pytestmark = pytest.mark.usefixtures("no_env_plugins")


def loaded_plugins(message: str) -> set[str]:
    """The packages an unknown-type error lists at its end (third-party ones installed beside
    graphnet among them)."""
    return set(message.split("plugins loaded: ")[1].split(", "))


def plugin_error(call: Callable[[], Any]) -> str:
    with pytest.raises(graphnet.PluginError) as info:
        call()
    return str(info.value)


# -- the hooks and the built-ins ---------------------------------------------------------------


def test_hookspecs_defines_the_seven_hooks_each_documented():
    """Plugin authors find exactly seven hooks, each with a summary and what it returns."""
    hooks = {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, "graphnet_spec")
    }
    assert sorted(hooks) == sorted(HOOKS)
    for name, function in hooks.items():
        doc = inspect.getdoc(function) or ""
        assert doc.splitlines()[0].strip(), name
        assert ":return:" in doc, name
        assert not inspect.signature(function).parameters, name


def test_every_hook_feeds_one_kind_of_plugin():
    """Each hook but graphnet_blocks feeds one kind (layer, loss, ...), so every hook a plugin
    implements is used; graphnet_blocks feeds the spec's blocks."""
    kinds = sorted(hook for hook, _, _ in KINDS.values())
    assert kinds == sorted(h for h in HOOKS if h != "graphnet_blocks")


@pytest.mark.parametrize(("kind", "name"), BUILT_INS)
def test_built_ins_come_from_the_graphnet_distribution(kind, name):
    """Dense, ReLU, MSE and the rest are ordinary plugins of the `graphnet` package."""
    entry = get_registry().entries(kind)[name]
    assert entry.package == "graphnet"
    assert entry.cls.__module__.startswith("graphnet_plugins.")


def test_built_ins_register_through_entry_points():
    """The built-ins are found through the `graphnet` entry-point group, as third parties' are."""
    modules = {ep.value for ep in entry_points(group="graphnet") if ep.dist.name == "graphnet"}
    assert {"graphnet_plugins.layers", "graphnet_plugins.losses"} <= modules


def test_importing_graphnet_does_not_import_the_built_ins():
    """The engine never imports its plugins; only the registry loads them, on demand."""
    code = "import sys, graphnet; print('graphnet_plugins' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


# -- registering a plugin ----------------------------------------------------------------------


def test_registered_plugin_layer_is_usable_in_a_spec(tmp_path, register):
    """Once a plugin is registered, its layer type works in a spec with its own options."""
    register(ScalePlugin(), "test-scale")
    spec = graphnet.load_spec(write_spec(tmp_path, SPEC))
    network = graphnet.build(spec)
    assert network.params["s/a"].tolist() == [2.0]
    x = np.array([[1.0, -3.0]])
    np.testing.assert_array_equal(network.predict({"x": x})["s"], 2.0 * x)


def test_registered_plugin_is_listed_with_its_package(register):
    """`graphnet plugins` shows a third-party layer next to the built-ins, with its package."""
    register(ScalePlugin(), "test-scale", "graphnet-test-scale")
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if " scaling " in line)
    assert row.split()[:3] == ["layer", "scaling", "graphnet-test-scale"]
    assert "y = a·x with one learnable scalar a." in row


def test_plugin_options_are_validated_by_the_engine(tmp_path, register):
    """An option the plugin's model does not declare is an error even if the model allows extras."""
    register(ScalePlugin(), "test-scale")
    path = write_spec(tmp_path, SPEC.replace("start: 2.0", "start: 2.0, strat: 1"))
    with pytest.raises(graphnet.SpecError) as info:
        graphnet.load_spec(path)
    assert str(info.value).startswith(f"{path}:5: nodes[0].strat: unknown option 'strat'")
    assert "(did you mean 'start'?); its options: start" in str(info.value)


def test_plugin_options_are_strict(tmp_path, register):
    """A plugin's options are not coerced: `start: "2"` is an error, located in the spec."""
    register(ScalePlugin(), "test-scale")
    path = write_spec(tmp_path, SPEC.replace("start: 2.0", 'start: "2"'))
    with pytest.raises(graphnet.SpecError) as info:
        graphnet.load_spec(path)
    assert str(info.value).startswith(f"{path}:5: nodes[0].start: input should be a valid number")


def test_unregistered_plugin_is_gone():
    """Unregistering a plugin removes its types again."""
    registry = get_registry()
    registry.register(ScalePlugin(), "test-scale")
    try:
        assert "scaling" in registry.entries("layer")
    finally:
        registry.unregister("test-scale")
    assert "scaling" not in registry.entries("layer")
    assert "test-scale" not in registry.packages


def test_same_type_registered_twice_names_both_packages(register):
    """Two plugins claiming one type name (in any case) is an error naming both packages."""
    registry = register(DuplicatePlugin(), "test-dup", "graphnet-fake-dense")
    message = plugin_error(lambda: registry.entries("layer"))
    assert "layer type 'dense' is registered twice" in message
    assert "'graphnet'" in message
    assert "'graphnet-fake-dense'" in message


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        (NonLayerPlugin(), "returned <class '{module}.NotALayer'> from graphnet_layers(), "),
        (LayerAsLossPlugin(), "from graphnet_losses(), which is not a subclass of graphnet.Loss"),
        (NamelessPlugin(), "layer class Nameless of plugin 'test-bad' has no `type` name"),
        (FailingPlugin(), "plugin 'test-bad' failed in graphnet_layers(): RuntimeError: hook"),
    ],
    ids=["not-a-layer", "layer-as-loss", "no-type", "hook-raises"],
)
def test_bad_plugin_classes_are_rejected(register, plugin, expected):
    """A hook returning something that is not a plugin class of its kind is a named error."""
    registry = register(plugin, "test-bad")
    kind = "loss" if isinstance(plugin, LayerAsLossPlugin) else "layer"
    message = plugin_error(lambda: registry.entries(kind))
    assert expected.format(module=__name__) in message
    if isinstance(plugin, NonLayerPlugin):
        assert message.endswith("which is not a subclass of graphnet.Layer")


def test_misspelt_hook_is_rejected_at_registration():
    """A plugin implementing a hook that does not exist is refused, naming the hook."""

    class Misspelt:
        @graphnet.hookimpl
        def graphnet_layer(self) -> list[Any]:
            return []

    registry = get_registry()
    message = plugin_error(lambda: registry.register(Misspelt(), "test-misspelt"))
    assert "plugin 'test-misspelt' cannot be registered: unknown hook 'graphnet_layer'" in message
    assert not registry.pm.has_plugin("test-misspelt")


@pytest.mark.parametrize(
    ("old", "new", "where", "expected"),
    [
        (
            "type: relu",
            "type: dens",
            "5: nodes[0].type",
            "unknown layer type 'dens' (did you mean 'dense'?); layers available: ",
        ),
        (
            "type: mse",
            "type: mes",
            "6: loss[0].type",
            "unknown loss type 'mes' (did you mean 'mse'?); losses available: ",
        ),
        (
            "loss:",
            "train: {optimizer: {type: sgdd}}\nloss:",
            "6: train.optimizer.type",
            "unknown optimizer type 'sgdd' (did you mean 'sgd'?)",
        ),
        (
            "loss:",
            "data: {source: synthetik}\nloss:",
            "6: data.source",
            "unknown data source type 'synthetik' (did you mean 'synthetic'?)",
        ),
        (
            "loss:",
            "train: {metrics: [maee]}\nloss:",
            "6: train.metrics[0]",
            "unknown metric type 'maee' (did you mean 'mae'?)",
        ),
    ],
    ids=["layer", "loss", "optimizer", "data-source", "metric"],
)
def test_unknown_type_lists_close_names_and_loaded_plugins(tmp_path, old, new, where, expected):
    """An unknown type suggests close names, lists what exists and which plugins are loaded."""
    path = write_spec(tmp_path, RELU_SPEC.replace(old, new))
    message = plugin_error(lambda: graphnet.load_spec(path))
    assert message.startswith(f"{path}:{where}: {expected}")
    assert "graphnet" in loaded_plugins(message)


def test_unknown_type_lists_a_registered_plugin_too(tmp_path, register):
    """The list of loaded plugins names third-party packages, so a missing install shows."""
    register(ScalePlugin(), "test-scale", "graphnet-test-scale")
    path = write_spec(tmp_path, SPEC.replace("type: scaling", "type: scalin"))
    message = plugin_error(lambda: graphnet.load_spec(path))
    assert "(did you mean 'scaling'" in message
    assert "scaling" in message.split("layers available: ")[1]
    assert {"graphnet", "graphnet-test-scale"} <= loaded_plugins(message)


def test_a_type_name_never_imports_a_module(tmp_path, monkeypatch):
    """A spec is data: a `type:` that happens to name an importable module imports nothing."""
    marker = tmp_path / "imported"
    write_file(tmp_path, f"open({str(marker)!r}, 'w').close()\n", "sneaky_layer.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write_spec(tmp_path, SPEC.replace("type: scaling", "type: sneaky_layer"))
    plugin_error(lambda: graphnet.load_spec(path))
    assert not marker.exists()
    assert "sneaky_layer" not in sys.modules


# -- --plugin and GRAPHNET_PLUGINS -------------------------------------------------------------


def test_plugin_file_loads_with_the_python_api(tmp_path):
    """`load_spec(..., plugins=[file])` loads a plugin that is not installed."""
    plugin = write_file(tmp_path, SCALE_PLUGIN, "scale_plugin.py")
    spec = graphnet.load_spec(write_spec(tmp_path, SPEC), plugins=[str(plugin)])
    assert spec.nodes[0].plugin.type == "scaling"
    assert "scaling" not in get_registry().entries("layer")  # only where it was asked for


@pytest.mark.parametrize("where", ["after", "before"])
def test_plugin_option_loads_a_plugin_file(tmp_path, where):
    """`--plugin path/to/file.py` works after the command or before it, as every option does."""
    plugin = str(write_file(tmp_path, SCALE_PLUGIN, "scale_plugin.py"))
    spec = str(write_spec(tmp_path, SPEC))
    args = (
        ["validate", spec, "--plugin", plugin]
        if where == "after"
        else ["--plugin", plugin, "validate", spec]
    )
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok")


def test_plugin_option_lists_the_file_in_plugins(tmp_path):
    """`graphnet plugins --plugin file.py` lists the file's layer with the file as its package."""
    plugin = str(write_file(tmp_path, SCALE_PLUGIN, "scale_plugin.py"))
    result = invoke("plugins", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if " scaling " in line)
    assert row.split()[:3] == ["layer", "scaling", plugin]


def test_plugin_option_loads_a_module_by_name(tmp_path, monkeypatch):
    """`--plugin some_module` imports an importable module by name."""
    write_file(tmp_path, SCALE_PLUGIN, "graphnet_scale_by_name.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke("plugins", "--plugin", "graphnet_scale_by_name")
    assert result.exit_code == 0, result.output
    assert "graphnet_scale_by_name" in result.output
    sys.modules.pop("graphnet_scale_by_name", None)


def test_graphnet_plugins_environment_variable(tmp_path, monkeypatch):
    """GRAPHNET_PLUGINS (comma-separated) loads plugin files for every command."""
    scaling = write_file(tmp_path, SCALE_PLUGIN, "scale_plugin.py")
    other = write_file(
        tmp_path, SCALE_PLUGIN.replace('"scaling"', '"scaling2"'), "scale2_plugin.py"
    )
    spec = str(write_spec(tmp_path, SPEC))
    monkeypatch.setenv(ENV_VAR, f"{scaling}, {other}")
    runner = CliRunner()
    result = runner.invoke(cli, ["validate", spec])
    assert result.exit_code == 0, result.output
    listing = runner.invoke(cli, ["plugins"]).output
    assert " scaling2 " in listing
    assert " scaling " in listing


def test_environment_and_option_plugins_combine(tmp_path, monkeypatch):
    """A plugin from GRAPHNET_PLUGINS and one from --plugin are both loaded."""
    scaling = write_file(tmp_path, SCALE_PLUGIN, "scale_plugin.py")
    other = write_file(
        tmp_path, SCALE_PLUGIN.replace('"scaling"', '"scaling2"'), "scale2_plugin.py"
    )
    monkeypatch.setenv(ENV_VAR, str(scaling))
    result = invoke("plugins", "--plugin", str(other))
    assert result.exit_code == 0, result.output
    assert " scaling " in result.output
    assert " scaling2 " in result.output


def test_duplicate_type_from_a_plugin_file_is_a_cli_error(tmp_path):
    """A plugin file claiming a built-in's type fails with exit 2, naming both packages."""
    text = SCALE_PLUGIN.replace('type = "scaling"', 'type = "ReLU"')
    plugin = str(write_file(tmp_path, text, "relu_again.py"))
    result = invoke("plugins", "--plugin", plugin)
    assert result.exit_code == 2
    assert "layer type 'relu' is registered twice: by " in result.output
    assert f"'{plugin}'" in result.output
    assert "'graphnet'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("import graphnet\nraise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("def broken(:\n", "SyntaxError: "),
        ("import graphnet_no_such_dependency\n", "ModuleNotFoundError: No module named"),
    ],
    ids=["raises", "syntax", "missing-dependency"],
)
def test_plugin_file_that_fails_to_import_is_named(tmp_path, monkeypatch, text, expected):
    """A plugin file that cannot be imported is named, with its error, and exits 2."""
    plugin = str(write_file(tmp_path, text, "broken_plugin.py"))
    message = plugin_error(lambda: get_registry([plugin]))
    assert message.startswith(f"plugin file {plugin} failed to import: {expected}")
    monkeypatch.setenv(ENV_VAR, plugin)
    result = invoke("plugins")
    assert result.exit_code == 2
    assert f"error: plugin file {plugin} failed to import: {expected}" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("no/such/plugin.py", "plugin file not found: no/such/plugin.py"),
        ("graphnet_no_such_plugin", "plugin module 'graphnet_no_such_plugin' failed to import: "),
    ],
)
def test_missing_plugin_is_named(ref, expected):
    """A --plugin that does not exist is named."""
    result = invoke("plugins", "--plugin", ref)
    assert result.exit_code == 2
    assert f"error: {expected}" in result.output


def test_plugin_file_returning_a_non_layer_is_rejected(tmp_path):
    """A plugin file whose hook returns a class that is not a Layer fails with a clear error."""
    text = "import graphnet\n\nclass Thing:\n    type = 'thing'\n\n"
    text += "@graphnet.hookimpl\ndef graphnet_layers():\n    return [Thing]\n"
    plugin = str(write_file(tmp_path, text, "thing_plugin.py"))
    result = invoke("plugins", "--plugin", plugin)
    assert result.exit_code == 2
    assert "graphnet_layers(), which is not a subclass of graphnet.Layer" in result.output
    assert "Traceback" not in result.output
