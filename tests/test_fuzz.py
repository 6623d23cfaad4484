"""Fuzzing the spec reader and the engine behind it: whatever a file holds, loading it gives a
graph or raises a ``GraphnetError``, never any other exception (which the command line would
show as an internal error). A spec that loads is built and trained a few steps on small data
(0s and 1s of each input's shape) with both kinds of pass: any failure is a ``GraphnetError``,
the same one either way, and when both succeed they agree bit for bit.

Three families of input: arbitrary YAML and JSON documents (random dicts, lists and scalars,
serialised both ways), mutations of the real specs in ``specs/`` (a key deleted, renamed or
given a random value, a node duplicated, node inputs swapped, random lines inserted into the
text, the text truncated), and random specs written with blocks (options and ``$option``,
``repeat``, blocks using blocks, blocks in included files), valid as drawn and then mutated.

By default each test runs a few hundred examples (the ``graphnet-ci`` profile), so the fuzz
tests run in every test run. ``pytest -m fuzz`` runs them with 10,000 examples each (the
``graphnet-fuzz`` profile); ``GRAPHNET_FUZZ_EXAMPLES=N`` sets the count explicitly.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import ROOT, SHIPPED_SPECS, same_both_ways, sample_data
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import graphnet
from graphnet.api import load_graph

SPECS = SHIPPED_SPECS

pytestmark = pytest.mark.fuzz

COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,  # a failure prints how to reproduce it
    "database": None,  # nothing written into the work tree
}
settings.register_profile("graphnet-ci", max_examples=200, **COMMON)  # type: ignore[arg-type]
settings.register_profile("graphnet-fuzz", max_examples=10_000, **COMMON)  # type: ignore[arg-type]


def fuzz_settings(config: pytest.Config) -> settings:
    """The profile for this run: ``graphnet-fuzz`` under ``-m fuzz``, else ``graphnet-ci``;
    ``GRAPHNET_FUZZ_EXAMPLES`` overrides the number of examples of either."""
    marks = str(getattr(config.option, "markexpr", "") or "")
    big = "fuzz" in marks and "not fuzz" not in marks
    chosen = settings.get_profile("graphnet-fuzz" if big else "graphnet-ci")
    count = os.environ.get("GRAPHNET_FUZZ_EXAMPLES", "").strip()
    return settings(chosen, max_examples=int(count)) if count else chosen


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each example's spec file is written (one file name per suffix, overwritten)."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture
def fuzz(request: pytest.FixtureRequest) -> Callable[[Any], None]:
    """Run a ``@given`` test with this run's settings; print how many examples it ran
    (``pytest -s`` shows the line)."""

    def run(test: Any) -> None:
        calls = 0
        inner = test.hypothesis.inner_test

        def counted(*args: Any, **kwargs: Any) -> None:
            nonlocal calls
            calls += 1
            inner(*args, **kwargs)

        test.hypothesis.inner_test = counted
        chosen = fuzz_settings(request.config)
        started = time.perf_counter()
        chosen(test)()
        print(
            f"\n{request.node.name}: {calls} examples run "
            f"(max_examples={chosen.max_examples}) in {time.perf_counter() - started:.1f} s"
        )

    return run


# Networks larger than this (elements of any input or node output, per sample) are loaded but
# not trained: a fuzzed `units: 100000` is a valid spec, and too slow to train here.
TRAIN_UP_TO = 256


def check_loads(path: Path, text: str, overrides: list[str] | None = None) -> None:
    """Loading ``text`` succeeds or raises a ``GraphnetError`` with a message; what loads
    builds and trains a few steps the same with either kind of pass (see ``check_trains``)."""
    path.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            graph = load_graph(path, overrides)
        except graphnet.GraphnetError as error:
            assert str(error).strip(), "an error without a message"
            assert error.exit_code == 2
            return
        spec = graph.spec
        assert isinstance(spec, graphnet.Spec)
        spec.to_dict()  # what a run saves as spec.yaml
        shapes = [*graph.inputs.values(), *graph.shapes.values()]
        if all(math.prod(shape) <= TRAIN_UP_TO for shape in shapes):
            check_trains(spec)


def check_trains(spec: graphnet.Spec) -> None:
    """Two training steps on 0/1 data, compiled and step by step: the same bits, or the same
    ``GraphnetError`` with a message (no other exception)."""
    with np.errstate(all="ignore"):
        try:
            same_both_ways(spec, sample_data(spec, n=4), steps=2)
        except graphnet.GraphnetError as error:
            assert str(error).strip(), "an error without a message"


# -- arbitrary documents -----------------------------------------------------------------------

SPEC_WORDS = [
    "name", "seed", "dtype", "data", "source", "inputs", "shape", "nodes", "type", "units",
    "loss", "outputs", "train", "epochs", "batch_size", "optimizer", "lr", "metrics", "x", "y",
    "dense", "relu", "add", "concat", "mse", "sgd", "hidden", "out", "weight", "validation",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-3, max_value=10)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(SPEC_WORDS)
)
keys = st.sampled_from(SPEC_WORDS) | st.text(max_size=8) | st.integers(-2, 5) | st.booleans()


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5)


documents = st.recursive(scalars, containers, max_leaves=20)

node_docs = st.fixed_dictionaries(
    {"name": st.sampled_from(["hidden", "out", "x", "y", "a b"]) | scalars},
    optional={
        "type": st.sampled_from(["dense", "relu", "add", "concat", "Dense", "nope"]) | scalars,
        "inputs": st.lists(st.sampled_from(["x", "y", "hidden", "out", "zz"]), max_size=3)
        | documents,
        "units": st.integers(-2, 6) | scalars,
        "rate": st.floats(-1, 2) | scalars,
    },
)
# documents shaped like a spec, so that validation gets past the first level
spec_docs = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.dictionaries(
            st.sampled_from(["x", "y", "z", "1x"]) | st.text(max_size=4),
            st.fixed_dictionaries({"shape": st.lists(st.integers(-1, 4), max_size=3) | documents})
            | documents,
            max_size=3,
        )
        | documents,
        "nodes": st.lists(node_docs, max_size=5) | documents,
        "loss": st.fixed_dictionaries(
            {
                "type": st.sampled_from(["mse", "bce", "cross_entropy"]) | scalars,
                "inputs": st.lists(st.sampled_from(["x", "y", "out", "hidden"]), max_size=3),
            },
            optional={"weight": scalars},
        )
        | documents,
        "train": st.dictionaries(st.sampled_from(SPEC_WORDS), documents, max_size=4) | documents,
        "data": st.dictionaries(st.sampled_from(SPEC_WORDS), documents, max_size=4) | documents,
        "dtype": st.sampled_from(["float32", "float64", "float16"]) | scalars,
        "seed": scalars,
        "outputs": documents,
    },
)


def as_json(document: Any) -> str | None:
    try:
        return json.dumps(document, indent=2)
    except (TypeError, ValueError):  # keys json cannot write
        return None


def test_arbitrary_documents_never_crash(fuzz: Callable[[Any], None], folder: Path) -> None:
    """Any YAML or JSON document, spec-shaped or not, validates or is a GraphnetError."""

    @given(document=documents | spec_docs, flow=st.booleans())
    @example(document=[], flow=False)
    @example(document={"inputs": {}, "nodes": [], "loss": []}, flow=True)
    def test(document: Any, flow: bool) -> None:
        check_loads(folder / "doc.yaml", yaml.safe_dump(document, default_flow_style=flow))
        text = as_json(document)
        if text is not None:
            check_loads(folder / "doc.json", text)
            check_loads(folder / "json.yaml", text)  # JSON is YAML too

    fuzz(test)


def test_arbitrary_text_never_crashes(fuzz: Callable[[Any], None], folder: Path) -> None:
    """Any text at all, read as YAML and as JSON, validates or is a GraphnetError."""

    @given(text=st.text(max_size=200) | st.text(alphabet="{}[]:,-&*!|>'\"#\n\t ab1", max_size=80))
    @example(text="a: &x [*x]\n")
    @example(text="? [1, 2]\n: 3\n")
    @example(text="!!python/object/apply:os.system ['true']\n")
    @example(text="\ufeff{}")
    def test(text: str) -> None:
        check_loads(folder / "text.yaml", text)
        check_loads(folder / "text.json", text)

    fuzz(test)


# -- mutations of the real specs -----------------------------------------------------------


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``document``."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield (*prefix, i)
            yield from paths(value, (*prefix, i))


def parent(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


LAYERS = ["dense", "relu", "sigmoid", "tanh", "softmax", "add", "concat", "dropout", "Dense"]
OPTIONS = [{"units": 3}, {"rate": 0.5}, {"rate": 1.5}, {"units": 2, "init": "zeros"}, {}]


MUTATIONS = ["delete", "replace", "rename", "duplicate", "swap", "retype", "rewire", "relayer"]
# the mutations that keep a spec's form: most results load, so they reach the training steps
NETWORK_MUTATIONS = ["swap", "rewire", "relayer"]


def mutate(data: st.DataObject, document: Any, kinds: list[str] = MUTATIONS) -> Any:
    """One structural mutation of a spec's data, of one of ``kinds``."""
    document = copy.deepcopy(document)
    kind = data.draw(st.sampled_from(kinds), label="mutation")
    every = list(paths(document))
    if kind in ("delete", "replace", "rename", "retype"):
        path = data.draw(st.sampled_from(every), label="path")
        container = parent(document, path)
        key = path[-1]
        if kind == "delete":
            del container[key]
        elif kind == "replace":
            container[key] = data.draw(documents, label="value")
        elif kind == "retype":
            container[key] = data.draw(scalars | st.lists(scalars, max_size=2), label="value")
        elif isinstance(container, dict):
            new = data.draw(
                st.sampled_from(SPEC_WORDS) | st.text(max_size=6) | st.just(f"{key}s"), label="key"
            )
            container[new] = container.pop(key)
    nodes = document.get("nodes") if isinstance(document, dict) else None
    if kind == "duplicate" and isinstance(nodes, list) and nodes:
        i = data.draw(st.integers(0, len(nodes) - 1), label="node")
        nodes.insert(data.draw(st.integers(0, len(nodes)), label="at"), copy.deepcopy(nodes[i]))
    names = [n.get("name") for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []
    inputs = document.get("inputs") if isinstance(document, dict) else None
    names += list(inputs) if isinstance(inputs, dict) else []
    if kind == "rewire" and isinstance(nodes, list) and nodes and names:
        node = nodes[data.draw(st.integers(0, len(nodes) - 1), label="node")]
        if isinstance(node, dict):  # cycles, self-loops, several inputs, repeats
            node["inputs"] = data.draw(st.lists(st.sampled_from(names), max_size=4), label="to")
    if kind == "relayer" and isinstance(nodes, list) and nodes:
        node = nodes[data.draw(st.integers(0, len(nodes) - 1), label="node")]
        if isinstance(node, dict):  # every built-in layer, with or without options
            node["type"] = data.draw(st.sampled_from(LAYERS), label="type")
            if data.draw(st.booleans(), label="options"):
                node.pop("units", None)
                node.update(data.draw(st.sampled_from(OPTIONS), label="with"))
    if kind == "swap" and isinstance(nodes, list) and len(nodes) >= 2:
        i, j = data.draw(st.lists(st.integers(0, len(nodes) - 1), min_size=2, max_size=2))
        if isinstance(nodes[i], dict) and isinstance(nodes[j], dict):
            nodes[i]["inputs"], nodes[j]["inputs"] = nodes[j].get("inputs"), nodes[i].get("inputs")
    return document


def mutate_text(data: st.DataObject, text: str) -> str:
    """Random lines inserted into the text, or the text cut short."""
    if data.draw(st.booleans(), label="truncate"):
        return text[: data.draw(st.integers(0, len(text)), label="cut")]
    lines = text.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 3), label="lines")):
        at = data.draw(st.integers(0, len(lines)), label="at")
        line = data.draw(
            st.text(max_size=30)
            | st.sampled_from(["  - {name: extra, type: relu, inputs: [x]}", "  units: 3", "\t"])
            | st.builds(lambda w, v: f"{w}: {v}", st.sampled_from(SPEC_WORDS), st.text(max_size=5)),
            label="line",
        )
        lines.insert(at, line + "\n")
    return "".join(lines)


ORIGINALS = {path.name: path.read_text(encoding="utf-8") for path in SPECS}
PARSED = {name: yaml.safe_load(text) for name, text in ORIGINALS.items()}


def spec_folder(folder: Path) -> Path:
    """A copy of the specs' data files beside the mutated specs (csv paths resolve)."""
    target = folder / "specs"
    if not target.exists():
        (target / "data").mkdir(parents=True)
        for path in (ROOT / "specs" / "data").iterdir():
            (target / "data" / path.name).write_bytes(path.read_bytes())
    return target


def test_the_specs_are_there() -> None:
    """The mutation tests start from real specs, and each of them is valid."""
    assert len(SPECS) >= 3
    for path in SPECS:
        graphnet.load_spec(path)


def test_mutated_specs_never_crash(fuzz: Callable[[Any], None], folder: Path) -> None:
    """A spec of specs/ with keys deleted, renamed or given random values, nodes duplicated or
    their inputs swapped, written as YAML or JSON: it validates or is a GraphnetError."""
    target = spec_folder(folder)

    @given(name=st.sampled_from(sorted(PARSED)), data=st.data(), as_yaml=st.booleans())
    def test(name: str, data: st.DataObject, as_yaml: bool) -> None:
        document = PARSED[name]
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            document = mutate(data, document)
        if as_yaml:
            check_loads(target / "mutated.yaml", yaml.safe_dump(document, sort_keys=False))
        else:
            text = as_json(document)
            if text is not None:
                check_loads(target / "mutated.json", text)

    fuzz(test)


def test_rewired_networks_train_the_same_both_ways(
    fuzz: Callable[[Any], None], folder: Path
) -> None:
    """A spec of specs/ with nodes rewired, given other layer types or their inputs swapped, in
    float32 or float64: it loads, builds and trains with both kinds of pass to the same bits,
    or is a GraphnetError."""
    target = spec_folder(folder)

    @given(
        name=st.sampled_from(sorted(PARSED)),
        data=st.data(),
        dtype=st.sampled_from(["float32", "float64"]),
    )
    def test(name: str, data: st.DataObject, dtype: str) -> None:
        document = {**PARSED[name], "dtype": dtype}
        for _ in range(data.draw(st.integers(1, 2), label="mutations")):
            document = mutate(data, document, NETWORK_MUTATIONS)
        check_loads(target / "rewired.yaml", yaml.safe_dump(document, sort_keys=False))

    fuzz(test)


def test_mutated_spec_text_never_crashes(fuzz: Callable[[Any], None], folder: Path) -> None:
    """A spec of specs/ with random lines inserted or cut short: valid or a GraphnetError."""
    target = spec_folder(folder)

    @given(name=st.sampled_from(sorted(ORIGINALS)), data=st.data())
    def test(name: str, data: st.DataObject) -> None:
        check_loads(target / "text.yaml", mutate_text(data, ORIGINALS[name]))
        as_json_text = as_json(PARSED[name])
        assert as_json_text is not None
        check_loads(target / "text.json", mutate_text(data, as_json_text))

    fuzz(test)


def test_random_overrides_never_crash(fuzz: Callable[[Any], None], folder: Path) -> None:
    """`--set KEY=VALUE` with random keys and values: applied and validated, or a GraphnetError."""
    target = spec_folder(folder)
    parts = st.sampled_from([*SPEC_WORDS, "0", "1", "-1", "9", "act", "h1"]) | st.text(max_size=5)
    items = st.builds(
        lambda key, sep, value: ".".join(key) + sep + value,
        st.lists(parts, min_size=0, max_size=4),
        st.sampled_from(["=", "=", ""]),
        st.text(max_size=12) | st.sampled_from(["3", "-1", "[1, 2]", "{a: 1}", "null", "1e-3"]),
    )

    @given(name=st.sampled_from(sorted(ORIGINALS)), overrides=st.lists(items, max_size=3))
    def test(name: str, overrides: list[str]) -> None:
        check_loads(target / "set.yaml", ORIGINALS[name], overrides)

    fuzz(test)


# -- specs written with blocks -------------------------------------------------------------

ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu"]
HEADER = {"name": "blocks", "inputs": {"x": {"shape": [3]}, "y": {"shape": [1]}}}
WIDTH = 3  # every block keeps the width of x, so that any block may be repeated


def draw_options(data: st.DataObject) -> dict[str, Any]:
    """A block's options and their defaults: some of units, act and depth."""
    options: dict[str, Any] = {}
    if data.draw(st.booleans(), label="units option"):
        options["units"] = WIDTH
    if data.draw(st.booleans(), label="act option"):
        options["act"] = data.draw(st.sampled_from(ACTIVATIONS), label="act")
    if data.draw(st.booleans(), label="depth option"):
        options["depth"] = data.draw(st.integers(1, 2), label="depth")
    return options


def draw_instance(
    data: st.DataObject, blocks: dict[str, Any], reads: list[str], own: dict[str, Any]
) -> dict[str, Any]:
    """A node using one of ``blocks``: its inputs, maybe repeat and inline options (a block's
    own option ``$name`` when ``own`` has it, else a literal that keeps the width)."""
    used = data.draw(st.sampled_from(sorted(blocks)), label="block")
    node: dict[str, Any] = {"type": used, "inputs": reads[: len(blocks[used]["inputs"])]}
    if data.draw(st.booleans(), label="repeat"):
        node["repeat"] = "$depth" if "depth" in own else data.draw(st.integers(1, 3), label="n")
    for option in blocks[used]["options"]:
        if data.draw(st.booleans(), label=f"set {option}"):
            literal = {"units": WIDTH, "depth": 2}.get(option) or data.draw(
                st.sampled_from(ACTIVATIONS), label="act"
            )
            node[option] = f"${option}" if option in own else literal
    return node


def draw_block(data: st.DataObject, blocks: dict[str, Any]) -> dict[str, Any]:
    """A block of one or two inputs whose nodes keep the width: dense, an activation, a skip
    connection, or a block defined before it."""
    inputs = ["h", "c"] if data.draw(st.booleans(), label="two inputs") else ["h"]
    options = draw_options(data)
    nodes: list[dict[str, Any]] = []
    previous = "h"
    if len(inputs) == 2:
        nodes.append({"name": "n0", "type": "add", "inputs": ["h", "c"]})
        previous = "n0"
    kinds = ["dense", "act", "skip", *(["block"] * 2 if blocks else [])]
    for _ in range(data.draw(st.integers(1, 3), label="nodes")):
        kind = data.draw(st.sampled_from(kinds), label="kind")
        node: dict[str, Any]
        if kind == "dense":
            units = "$units" if "units" in options else WIDTH
            node = {"type": "dense", "inputs": [previous], "units": units}
        elif kind == "act":
            act = "$act" if "act" in options else data.draw(st.sampled_from(ACTIVATIONS))
            node = {"type": act, "inputs": [previous]}
        elif kind == "skip":
            node = {"type": "add", "inputs": [previous, "h"]}
        else:
            node = draw_instance(data, blocks, [previous, "h"], options)
        previous = f"n{len(nodes)}"
        nodes.append({"name": previous, **node})
    return {"inputs": inputs, "options": options, "nodes": nodes, "output": previous}


def draw_block_spec(data: st.DataObject) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A valid spec written with blocks, and the documents of the two files it may include
    (``blocks-1.yaml``, which may include ``blocks-2.yaml``)."""
    blocks: dict[str, Any] = {}
    homes: list[dict[str, Any]] = [{}, {}, {}]  # the spec's own blocks, then each file's
    for k in range(data.draw(st.integers(1, 4), label="blocks")):
        name = f"b{k}"
        blocks[name] = draw_block(data, blocks)
        homes[data.draw(st.integers(0, 2), label="file")][name] = blocks[name]
    nodes: list[dict[str, Any]] = []
    previous = "x"
    for k in range(data.draw(st.integers(1, 3), label="instances")):
        if data.draw(st.booleans(), label="layer"):
            node = {"type": data.draw(st.sampled_from(ACTIVATIONS)), "inputs": [previous]}
        else:
            node = draw_instance(data, blocks, [previous, "x"], {})
        previous = f"i{k}"
        nodes.append({"name": previous, **node})
    nodes.append({"name": "out", "type": "dense", "inputs": [previous], "units": 1})
    spec = {
        **copy.deepcopy(HEADER),
        "nodes": nodes,
        "loss": {"type": "mse", "inputs": ["out", "y"]},
    }
    files = [{"blocks": homes[1]}, {"blocks": homes[2]}]
    if homes[0]:
        spec["blocks"] = homes[0]
    both = data.draw(st.booleans(), label="include both")  # a diamond: blocks-2 read once
    spec["include"] = ["blocks-1.yaml", *(["blocks-2.yaml"] if both else [])]
    files[0]["include"] = ["blocks-2.yaml"]
    return spec, files


def write_includes(target: Path, files: list[Any]) -> None:
    """This example's included files, and none left by an earlier one (an example must not
    depend on the ones before it)."""
    for stale in target.glob("blocks-*.yaml"):
        stale.unlink()
    for k, document in enumerate(files, start=1):
        (target / f"blocks-{k}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def blocks_folder(folder: Path) -> Path:
    target = folder / "blocks"
    target.mkdir(exist_ok=True)
    return target


def test_block_specs_expand_validate_and_save(fuzz: Callable[[Any], None], folder: Path) -> None:
    """A spec written with blocks (options, $option, repeat, nested blocks, included files)
    expands and validates; each node belongs to one instance, whose parameters add up; the
    run's spec.yaml of it expands to the same nodes; it trains the same both ways."""
    from graphnet.instances import collapse, parameter_counts, saved

    target = blocks_folder(folder)

    @given(data=st.data())
    def test(data: st.DataObject) -> None:
        spec, files = draw_block_spec(data)
        write_includes(target, files)
        path = target / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = load_graph(path)
            counts = parameter_counts(graph)
            items = collapse(graph, counts)
            assert [n for item in items for n in item.nodes] == graph.nodes
            assert [item.name for item in items] == [n["name"] for n in spec["nodes"]]
            assert sum(item.params for item in items) == sum(counts.values())
            again = target / "saved.yaml"
            again.write_text(yaml.safe_dump(saved(graph.spec), sort_keys=False))
            resaved = load_graph(again).spec
            assert resaved.to_dict()["nodes"] == graph.spec.to_dict()["nodes"]
            assert saved(resaved) == saved(graph.spec)
            check_trains(graph.spec)

    fuzz(test)


BAD_VALUES = [0, -1, "2", 1.5, True, None, [], 10**9, 100_001, "$nope", "dense", "a.b", ""]
BLOCK_MUTATIONS = ["value", "option", "cycle", "name", "include", "generic", "included"]


def nodes_of(document: Any) -> list[dict[str, Any]]:
    """The nodes of a spec or a block that are mappings (a mutation may have made them
    anything)."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def mutate_blocks(data: st.DataObject, spec: dict[str, Any], files: list[Any]) -> None:
    """One mutation, in place, of a spec written with blocks or of a file it includes."""
    kind = data.draw(st.sampled_from(BLOCK_MUTATIONS), label="block mutation")
    documents = [d for d in [spec, *files] if isinstance(d, dict)]
    blocks = [
        (d, name)
        for d in documents
        if isinstance(d.get("blocks"), dict)
        for name, body in d["blocks"].items()
        if isinstance(body, dict) and nodes_of(body)
    ]
    if kind == "value":  # any value of any node anywhere: repeat, units, inputs, type, ...
        nodes = [n for d, b in blocks for n in nodes_of(d["blocks"][b])] + nodes_of(spec)
        if not nodes:
            return
        node = data.draw(st.sampled_from(nodes), label="node")
        key = data.draw(st.sampled_from([*node, "repeat", "units"]), label="key")
        node[key] = data.draw(st.sampled_from(BAD_VALUES) | scalars, label="value")
    elif kind == "option" and blocks:  # $name of an option the block lacks, or options changed
        document, name = data.draw(st.sampled_from(blocks), label="block")
        block = document["blocks"][name]
        if data.draw(st.booleans(), label="drop an option"):
            block["options"] = data.draw(st.sampled_from([{}, None, [], "x"]), label="options")
        else:
            nodes_of(block)[-1]["units"] = data.draw(st.sampled_from(["$nope", "$units"]))
    elif kind == "cycle" and blocks:  # the first block uses a later one, or itself
        document, first = blocks[0]
        _, used = data.draw(st.sampled_from(blocks), label="uses")
        body = document["blocks"][first]
        body["nodes"].append({"name": "loop", "type": used, "inputs": [body.get("output"), "h"]})
    elif kind == "name" and blocks:  # a block named like a layer, with a dot, twice, ...
        document, name = data.draw(st.sampled_from(blocks), label="block")
        new = data.draw(st.sampled_from(["dense", "Relu", "a.b", "", "1x", "b0", "b1"]))
        document["blocks"] = {new if k == name else k: v for k, v in document["blocks"].items()}
    elif kind == "include" and documents:  # missing, a cycle, not a list, a folder, this file
        document = data.draw(st.sampled_from(documents[:2]), label="document")
        document["include"] = data.draw(
            st.sampled_from(
                [
                    ["missing.yaml"],
                    ["spec.yaml"],
                    ["blocks-1.yaml"],
                    "blocks-2.yaml",
                    3,
                    ["."],
                    [""],
                ]
            ),
            label="include",
        )
        back = data.draw(st.sampled_from([[], ["blocks-1.yaml"]]), label="back")
        if isinstance(files[1], dict):
            files[1]["include"] = back
    elif kind == "generic":
        mutated = mutate(data, spec)
        spec.clear()
        spec.update(mutated if isinstance(mutated, dict) else {})
    else:  # a file's document mutated like a spec
        k = data.draw(st.integers(0, len(files) - 1), label="file")
        files[k] = mutate(data, files[k])


def test_mutated_block_specs_never_crash(fuzz: Callable[[Any], None], folder: Path) -> None:
    """A spec written with blocks, or a file it includes, mutated (bad repeat and option values,
    unknown $options, cycles of blocks, blocks named like layers, includes missing or in a
    cycle, keys deleted or renamed): it validates or is a GraphnetError (exit 2), in a bounded
    time: a repeat of a billion is refused, never expanded."""
    target = blocks_folder(folder)

    @given(data=st.data())
    def test(data: st.DataObject) -> None:
        spec, files = draw_block_spec(data)
        for _ in range(data.draw(st.integers(1, 2), label="mutations")):
            mutate_blocks(data, spec, files)
        write_includes(target, files)
        started = time.perf_counter()
        check_loads(target / "spec.yaml", yaml.safe_dump(spec, sort_keys=False))
        assert time.perf_counter() - started < 60

    fuzz(test)
