"""The ``graphnet`` command: thin wrappers around the Python API.

This is the one place where a :class:`GraphnetError` becomes a message and an exit status:
0 success, 2 bad command line, spec or data, 1 a run that failed. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import atexit
import gc
import shlex
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from graphnet import __version__
from graphnet.errors import GraphnetError, GraphnetWarning, Interrupted

F = TypeVar("F", bound=Callable[..., Any])


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        root = ctx.find_root()
        if isinstance(value, tuple):
            root.meta[key] = (*root.meta.get(key, ()), *value)
        elif value:
            root.meta[key] = value

    return callback


def common_options(f: F) -> F:
    """``--plugin`` and ``--debug``, accepted by every command."""
    f = click.option(
        "--plugin",
        multiple=True,
        metavar="MODULE_OR_FILE",
        expose_value=False,
        callback=_remember("graphnet.plugins"),
        help="Load a plugin module or .py file that is not installed (repeatable; also GRAPHNET_PLUGINS).",
    )(f)
    f = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_remember("graphnet.debug"),
        help="Show the full traceback of an error.",
    )(f)
    return f


RUN_FLAGS = {"out_dir": "--out", "weights": "--weights", "resume": "--resume"}

overrides_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec value first."
)


def _plugins() -> tuple[str, ...]:
    return tuple(click.get_current_context().find_root().meta.get("graphnet.plugins", ()))


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    click.echo(f"warning: {message}", err=True)


def _skip_exit_collections() -> None:
    """Leave what is alive when the process exits out of the interpreter's last full garbage
    collections: they would walk every object numpy, pydantic and the plugins made, which
    costs a small command more than its own work, to free memory the process is giving back."""
    atexit.unregister(gc.freeze)  # once, however many commands run in this process
    atexit.register(gc.freeze)


class GraphnetGroup(click.Group):
    """Turns errors into messages and exit statuses, in one place."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True):  # the process ends after the command
            _skip_exit_collections()
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("always", GraphnetWarning)
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except GraphnetError as error:
                if ctx.meta.get("graphnet.debug"):
                    raise
                label = "interrupted" if isinstance(error, Interrupted) else "error"
                click.echo(f"{label}: {error}", err=True)
                ctx.exit(error.exit_code)
            except KeyboardInterrupt:
                if ctx.meta.get("graphnet.debug"):
                    raise
                click.echo("interrupted", err=True)
                ctx.exit(130)
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except Exception as error:
                if ctx.meta.get("graphnet.debug"):
                    raise
                click.echo(
                    f"internal error: {type(error).__name__}: {error} (run again with --debug for the traceback)",
                    err=True,
                )
                ctx.exit(1)


@click.group(cls=GraphnetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)  # the installed version (a test holds them equal)
@common_options
def cli() -> None:
    """Train neural networks that are written down, not programmed."""


# -- run -------------------------------------------------------------------------------------


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder (default: runs/<name>).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec value, e.g. train.epochs=10.",
)
@click.option(
    "--weights", type=click.Path(path_type=Path), help="Start from these parameters (an NPZ file)."
)
@click.option("--resume", is_flag=True, help="Continue the run in the folder from its checkpoint.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final summary.")
@common_options
def run(
    spec: Path,
    out: Path | None,
    overrides: Sequence[str],
    weights: Path | None,
    resume: bool,
    quiet: bool,
) -> None:
    """Validate SPEC, train it and write the run folder."""
    from graphnet.api import load_spec, train
    from graphnet.progress import reporter_for, summary

    started = time.perf_counter()
    loaded = load_spec(spec, overrides, plugins=_plugins())
    if weights is not None and not weights.is_file():
        raise GraphnetError("weights file not found", str(weights))
    reporter = reporter_for(quiet)
    try:
        history = train(loaded, out, weights, resume=resume, reporter=reporter, names=RUN_FLAGS)
    except Interrupted as error:
        if error.complete:
            raise
        again = [f"--plugin {shlex.quote(ref)}" for ref in _plugins()]
        again += [f"--set {shlex.quote(item)}" for item in overrides]
        command = ["graphnet run", shlex.quote(str(spec)), "--out", shlex.quote(str(error.where))]
        raise error.add_context(
            after=f"\nto continue: {' '.join([*command, *again, '--resume'])}"
        ) from None
    finally:
        reporter.close()
    elapsed = time.perf_counter() - started
    click.echo(summary(history, history.run_dir, elapsed, history.results, history.test))


SWEEP_FLAGS = {
    "grid": "--grid",
    "seeds": "--seeds",
    "sample": "--sample",
    "workers": "--workers",
    "scheduler": "--scheduler",
    "out_dir": "--out",
    "monitor": "--monitor",
    "resume": "--resume",
}


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--grid", multiple=True, metavar="KEY=V1,V2,...", help="Values of a spec key (repeatable)."
)
@click.option("--seeds", default=1, show_default=True, help="Seeds per combination.")
@click.option("--sample", type=int, help="Train N combinations drawn with the spec's seed.")
@click.option("--workers", type=int, help="Local worker processes (default: the CPU count).")
@click.option("--scheduler", metavar="ADDRESS", help="An existing Dask scheduler, tcp://host:port.")
@click.option("--monitor", metavar="COLUMN", help="The column trials are ranked by.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Sweep folder (default: runs/<name>-sweep).",
)
@click.option("--resume", is_flag=True, help="Skip finished trials, run the others again.")
@common_options
def sweep(
    spec: Path,
    grid: Sequence[str],
    seeds: int,
    sample: int | None,
    workers: int | None,
    scheduler: str | None,
    monitor: str | None,
    out: Path | None,
    resume: bool,
) -> None:
    """Train every combination of the --grid values of SPEC on dask.distributed."""
    from graphnet.sweeps import sweep as run_sweep
    from graphnet.trials import ranked

    if workers is not None and scheduler is not None:
        raise GraphnetError("--workers and --scheduler do not go together")
    rows = run_sweep(
        spec,
        grid,
        seeds,
        sample,
        workers,
        scheduler,
        out,
        monitor,
        resume,
        plugins=_plugins(),
        progress=True,
        names=SWEEP_FLAGS,
    )
    click.echo(ranked(rows, [k for k in rows[0] if k not in SWEEP_COLUMNS]))
    if not any(row["status"] == "done" for row in rows):
        click.echo("error: no trial finished", err=True)
        raise click.exceptions.Exit(1)


SWEEP_COLUMNS = (
    *("trial", "seed", "status", "epochs", "loss", "val_loss"),
    *("monitor", "best", "best_epoch", "seconds"),
)


# -- validate, summary, plugins --------------------------------------------------------------


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@overrides_option
@click.option(
    "--print",
    "show",
    is_flag=True,
    help="Also print the resolved spec as YAML, marking each --set value.",
)
@click.option(
    "--expand",
    is_flag=True,
    help="With --print, show the nodes that blocks expand to, not the spec as written.",
)
@common_options
def validate(spec: Path, overrides: Sequence[str], show: bool, expand: bool) -> None:
    """Validate SPEC and infer its shapes, without training."""
    from graphnet.api import load_graph

    graph = load_graph(spec, overrides, plugins=_plugins())
    if graph.spec.data is not None:  # the data too: shapes, finiteness, targets, splits
        from graphnet.dataset import prepare, streams

        prepare(graph.spec, streams(graph.spec.seed))
    losses = len(graph.losses)
    click.echo(
        f"ok: {spec}: {len(graph.nodes)} nodes, {len(graph.inputs)} inputs, "
        f"{losses} loss{'es' if losses != 1 else ''}"
    )
    if show:
        from graphnet.yamlio import resolved_yaml

        source = graph.spec.source
        if source.written is not None and not expand:  # blocks: the spec as written
            click.echo(resolved_yaml(source.written, source.overrides), nl=False)
        else:
            click.echo(resolved_yaml(graph.spec.to_dict(), source.overrides), nl=False)


# -- predict, graph, schema ------------------------------------------------------------------


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--input",
    "input_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The inputs: a CSV file (columns as the spec's csv source, or <input>_<i>) or an NPZ file.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the predictions here (.csv or .npz); default: CSV on standard output.",
)
@click.option(
    "--proba",
    is_flag=True,
    help="Also write each classification output's probabilities <output>_p<k>.",
)
@common_options
def predict(run_dir: Path, input_file: Path, output: Path | None, proba: bool) -> None:
    """Predict with the trained run in RUN_DIR on a CSV or NPZ file.

    Reads the inputs the outputs depend on; writes one row per input row, header
    <output>_<i>, as CSV (on standard output without --output) or NPZ.
    """
    from graphnet.api import load_run
    from graphnet.predict import predict_file, prepare

    source, output = prepare(run_dir, input_file, output)
    outputs, text = predict_file(load_run(run_dir, _plugins()), source, output, proba)
    if text is not None:
        click.echo(text, nl=False)
    else:
        rows = len(next(iter(outputs.values()))) if outputs else 0
        click.echo(f"wrote {rows} predictions of {', '.join(outputs)} to {output}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Evaluate on this CSV or NPZ file of inputs and targets (default: the run's test "
    "split, else its validation split).",
)
@click.option(
    "--confusion", is_flag=True, help="Print each classification loss's confusion matrix."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw the confusion matrices to this picture (.png, .svg, .pdf).",
)
@common_options
def evaluate(run_dir: Path, input_file: Path | None, confusion: bool, output: Path | None) -> None:
    """Loss and every metric of the trained run in RUN_DIR on its test split (else its
    validation split) or on a file holding inputs and targets."""
    from graphnet.api import load_run
    from graphnet.evaluation import (
        check_output,
        confusions,
        draw_confusions,
        evaluation,
        format_confusion,
        scores,
    )

    if output is not None:
        check_output(output)
    network = load_run(run_dir, _plugins())
    what, arrays = evaluation(network, input_file)
    figures = scores(network, arrays)
    n = len(next(iter(arrays.values())))
    click.echo(f"{what}: {n} samples")
    click.echo(_table([[k, f"{v:.6g}"] for k, v in figures.items()]))
    matrices = confusions(network, arrays) if confusion or output is not None else []
    if confusion:
        for item in matrices:
            click.echo(format_confusion(item))
    if output is not None:
        if not matrices:
            from graphnet.errors import SpecError

            raise SpecError("--output: the run has no classification loss to draw")
        draw_confusions(matrices, output)
        click.echo(f"wrote {output}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot"]),
    help="The text to write (default: text, or what --output's extension says).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to a file: .txt, .mmd, .dot, or an image (.svg, .png, .pdf) drawn by Graphviz.",
)
@overrides_option
@click.option(
    "--expand", is_flag=True, help="Every node of each block instance, grouped by instance."
)
@common_options
def graph(
    spec: Path, fmt: str | None, output: Path | None, overrides: Sequence[str], expand: bool
) -> None:
    """Draw SPEC's graph as text, Mermaid, dot or an image.

    Shows every input with its shape, every node with its type, output shape and parameter
    count, the losses and the outputs; a block instance is one box unless --expand. Images
    (.svg, .png, .pdf) need Graphviz's `dot` program.
    """
    from graphnet.api import load_graph
    from graphnet.drawing import choose_format, draw

    choose_format(fmt, output)  # a bad --format or --output fails before the spec is read
    if output is not None:
        from graphnet.runfolder import refuse_run_file

        refuse_run_file(output, "--output")
    text = draw(load_graph(spec, overrides, plugins=_plugins()), fmt, output, expand)
    if text is not None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output}")


@cli.command()
@common_options
def schema() -> None:
    """Print the JSON Schema of the spec format.

    Built from every installed plugin (and --plugin ones): each node's type selects that
    layer's own options, with their descriptions, defaults and allowed values.
    """
    import json

    from graphnet.registry import get_registry
    from graphnet.schema import spec_schema

    click.echo(json.dumps(spec_schema(get_registry(_plugins())), indent=2, ensure_ascii=False))


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@overrides_option
@click.option("--expand", is_flag=True, help="A row per node of every block instance.")
@common_options
def summary(spec: Path, overrides: Sequence[str], expand: bool) -> None:
    """A table of SPEC's nodes: type, inputs, output shape and parameter count (a block
    instance is one row, unless --expand)."""
    from graphnet.api import load_graph
    from graphnet.instances import collapse, collapsed, owners, parameter_counts

    graph = load_graph(spec, overrides, plugins=_plugins())
    counts = parameter_counts(graph)
    rows = [["node", "type", "inputs", "output shape", "parameters"]]
    rows += [[name, "input", "-", str(list(shape)), "0"] for name, shape in graph.inputs.items()]
    for item in collapse(graph, counts, expand):
        row = [item.name, item.type, ", ".join(item.inputs), str(list(item.shape))]
        rows.append([*row, f"{item.params:,}"])
    total = sum(counts.values())
    for loss in graph.losses:
        weight = f" (weight {loss.weight:g})" if loss.weight != 1 else ""
        reads = ", ".join(collapsed(loss.inputs, owners(graph, expand)))
        rows.append(["(loss)", loss.type + weight, reads, "[]", "-"])
    click.echo(_table(rows))
    click.echo(f"total: {len(graph.nodes)} nodes, {total:,} parameters ({graph.dtype})")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@overrides_option
@click.option(
    "--samples",
    default=4,
    show_default=True,
    type=click.IntRange(1),
    help="Samples of the data to check on.",
)
@common_options
def gradcheck(spec: Path, overrides: Sequence[str], samples: int) -> None:
    """Check every node's gradients against finite differences, on a few samples of SPEC's data."""
    import numpy as np

    from graphnet.api import load_spec
    from graphnet.dataset import load_data, streams
    from graphnet.errors import TrainingError
    from graphnet.network import build
    from graphnet.testing import check_network

    own = load_spec(spec, overrides, plugins=_plugins())
    loaded = load_spec(spec, [*overrides, "dtype=float64"], plugins=_plugins())
    data = load_data(loaded, streams(loaded.seed)["data"])
    batch = {name: array[:samples] for name, array in data.items()}
    if own.dtype != "float64":  # one checked training step in the spec's own dtype first
        network = build(own)
        with np.errstate(all="ignore"):
            network.train_step(network.values(batch, list(network.graph.inputs)))
    results = check_network(build(loaded), batch, seed=loaded.seed)
    rows = [["node", "type", "max relative error", ""]]
    failed = [(name, kind, r) for name, kind, r in results if isinstance(r, AssertionError)]
    for name, kind, result in results:
        if isinstance(result, AssertionError):
            rows.append([name, kind, "-", "FAILED"])
        else:
            rows.append([name, kind, f"{result:.2e}", "ok"])
    click.echo(_table(rows))
    if failed:
        name, kind, error = failed[0]
        raise TrainingError(f"gradient check failed at {name!r} ({kind}): {error}")
    in_own = (
        f"; one training step in {own.dtype} keeps every dtype" if own.dtype != "float64" else ""
    )
    click.echo(
        f"ok: the gradients of {len(results)} nodes and losses match finite differences{in_own}"
    )


@cli.command()
@click.argument(
    "run_dirs", nargs=-1, required=True, metavar="RUN_DIR...", type=click.Path(path_type=Path)
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The picture to write (.png, .svg, .pdf, ...); default loss.png, never over an existing one.",
)
@common_options
def plot(run_dirs: Sequence[Path], output: Path | None) -> None:
    """Loss curves of one or more runs in one picture, each run in its own colour."""
    from graphnet.plots import compare
    from graphnet.runfolder import refuse_run_file

    if output is None:
        output = Path("loss.png")
        if output.exists():
            raise GraphnetError(
                "loss.png exists here already; name the picture with --output", str(output)
            )
    refuse_run_file(output, "--output")
    click.echo(f"wrote {compare(run_dirs, output)}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ONNX file to write (outside the run folder).",
)
@click.option(
    "--opset",
    type=click.IntRange(min=1),
    default=None,
    help="The ONNX opset to write (default 17; 13 or newer).",
)
@common_options
def export(run_dir: Path, output: Path, opset: int | None) -> None:
    """Export the trained run in RUN_DIR as an ONNX model for inference.

    Its inputs are the spec's inputs the outputs need (batch axis dynamic), its outputs the
    spec's outputs, with data.normalize folded in. Needs the onnx extra.
    """
    from graphnet.api import export_onnx

    export_onnx(run_dir, output, opset, _plugins(), names={"path": "--output"})
    click.echo(f"wrote {output}")


@cli.command(name="plugins")
@common_options
def plugins_command() -> None:
    """Every registered layer, loss, optimizer, data source and metric, with its package."""
    from graphnet.registry import KINDS, get_registry

    registry = get_registry(_plugins())
    rows = [["kind", "type", "package", "description"]]
    for kind in KINDS:
        for name, entry in sorted(registry.entries(kind).items()):
            rows.append([kind, name, entry.package, entry.cls.summary()])
    for package, why in sorted(registry.broken.items()):
        rows.append(["(broken)", "-", package, f"failed to load: {why}"])
    click.echo(_table(rows))
