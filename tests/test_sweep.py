"""``graphnet sweep``: a grid of trials on dask.distributed, each trial the same bits as a plain
run, on a local cluster and on a scheduler and worker that share no folder with the client."""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import graphnet
from graphnet.cli import cli

pytest.importorskip("distributed")

SPEC = """\
name: tiny
seed: 0
data: {source: synthetic, function: xor, samples: 64, noise: 0.05, validation: 0.25}
inputs:
  x: {shape: [2]}
  y: {shape: [1]}
nodes:
  - {name: hidden, type: dense, inputs: [x], units: 4}
  - {name: act, type: tanh, inputs: [hidden]}
  - {name: logit, type: dense, inputs: [act], units: 1}
loss: {type: bce, inputs: [logit, y]}
train:
  epochs: 3
  batch_size: 16
  optimizer: {type: sgd, lr: 0.1}
"""
GRID = {"train.optimizer.lr": [0.1, 0.3]}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def local_cluster():
    from distributed import LocalCluster

    from graphnet.sweeps import BLAS_ENV

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env=dict(BLAS_ENV),
    )
    yield cluster.scheduler_address
    cluster.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def remote_scheduler(tmp_path_factory: pytest.TempPathFactory):
    """A ``dask scheduler`` and a ``dask worker`` started as processes, the worker in a folder
    of its own."""
    bin_dir = Path(sys.executable).parent
    address = f"tcp://127.0.0.1:{_free_port()}"
    elsewhere = tmp_path_factory.mktemp("worker-home")
    scheduler = subprocess.Popen(
        [
            str(bin_dir / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            address.rsplit(":", 1)[1],
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            str(bin_dir / "dask"),
            "worker",
            address,
            "--nthreads",
            "1",
            "--nworkers",
            "1",
            "--no-dashboard",
            "--local-directory",
            str(elsewhere),
        ],
        cwd=elsewhere,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(1, timeout=30)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    yield address
    worker.terminate()
    scheduler.terminate()
    worker.wait(30)
    scheduler.wait(30)


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "sweep.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _same_as_plain_runs(spec_file: Path, folder: Path, tmp_path: Path) -> None:
    for row in _rows(folder):
        overrides = {
            "train.optimizer.lr": float(row["train.optimizer.lr"]),
            "seed": int(row["seed"]),
        }
        plain = tmp_path / f"plain-{row['trial']}"
        graphnet.train(graphnet.load_spec(spec_file, overrides), plain)
        for name in ("weights.npz", "checkpoint.npz"):
            a, b = np.load(plain / name), np.load(folder / row["trial"] / name)
            assert sorted(a) == sorted(b)
            for key in a:
                assert a[key].tobytes() == b[key].tobytes(), (row["trial"], name, key)


@pytest.mark.parametrize("where", ["local", "remote"])
def test_every_trial_is_the_plain_run_of_its_overrides(
    where: str, spec_file: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each trial's weights.npz is bit for bit what ``graphnet.train`` gives for the same
    overrides and seed, on a local cluster and on a worker that shares no folder with us."""
    address = request.getfixturevalue("local_cluster" if where == "local" else "remote_scheduler")
    out = tmp_path / "sweep"
    rows = graphnet.sweep(spec_file, GRID, seeds=2, scheduler=address, out_dir=out)
    assert [r["trial"] for r in rows] == ["trial-001", "trial-002", "trial-003", "trial-004"]
    assert [r["status"] for r in rows] == ["done"] * 4
    assert [(r["train.optimizer.lr"], r["seed"]) for r in rows] == [
        (0.1, 0),
        (0.1, 1),
        (0.3, 0),
        (0.3, 1),
    ]
    saved = (out / "trial-003" / "spec.yaml").read_text()
    assert "lr: 0.3" in saved and "seed: 0" in saved
    assert (out / "sweep.png").is_file() and (out / "trial-001" / "loss.png").is_file()
    _same_as_plain_runs(spec_file, out, tmp_path)


def test_resume_skips_finished_trials(spec_file: Path, tmp_path: Path, local_cluster: str) -> None:
    """``resume`` trains only the trials that did not finish, to the same bits as one sweep."""
    out = tmp_path / "sweep"
    graphnet.sweep(spec_file, GRID, scheduler=local_cluster, out_dir=out)
    before = (out / "trial-001" / "weights.npz").read_bytes()
    shutil.rmtree(out / "trial-002")
    lines = (out / "sweep.csv").read_text().splitlines()
    lines[2] = lines[2].replace(",done,", ",interrupted,")
    (out / "sweep.csv").write_text("\n".join(lines) + "\n")
    stamp = (out / "trial-001" / "weights.npz").stat().st_mtime_ns
    with pytest.raises(graphnet.SpecError, match="holds a sweep"):
        graphnet.sweep(spec_file, GRID, scheduler=local_cluster, out_dir=out)
    rows = graphnet.sweep(spec_file, GRID, scheduler=local_cluster, out_dir=out, resume=True)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert (out / "trial-001" / "weights.npz").stat().st_mtime_ns == stamp
    assert (out / "trial-001" / "weights.npz").read_bytes() == before
    _same_as_plain_runs(spec_file, out, tmp_path)


def test_sample_draws_combinations_with_the_spec_seed(spec_file: Path) -> None:
    """``--sample N`` trains N of the combinations, the same ones every time."""
    from graphnet.trials import make_trials, parse_grid

    names = {"grid": "--grid", "seeds": "--seeds", "sample": "--sample"}
    grid = parse_grid(["train.optimizer.lr=0.1,0.2,0.3", "nodes.hidden.units=2,4"])
    first = make_trials(spec_file, grid, 1, 3, (), names)
    again = make_trials(spec_file, grid, 1, 3, (), names)
    assert len(first) == 3
    assert [t.values for t in first] == [t.values for t in again]


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        ("train.optimizer.lr=0.1,oops", "--grid"),
        ("nodes.hiddn.units=2,4", "--grid nodes.hiddn.units"),
        ("train.epochs=2,-1", "--grid train.epochs=-1"),
        ("train.epochs", "--grid takes KEY=V1,V2"),
    ],
)
def test_a_bad_grid_value_exits_2_naming_the_grid(
    grid: str, expected: str, spec_file: Path, tmp_path: Path
) -> None:
    """Every trial is validated before any is submitted: a bad value exits 2, naming --grid."""
    result = CliRunner().invoke(
        cli, ["sweep", str(spec_file), "--grid", grid, "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert not (tmp_path / "s").exists()


def test_import_graphnet_never_imports_dask() -> None:
    """dask stays behind ``graphnet sweep``: importing graphnet and running other commands
    leave it unloaded."""
    code = (
        "import sys, graphnet, graphnet.cli, graphnet.api\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(graphnet.cli.cli, ['schema'])\n"
        "assert not any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules), "
        "sorted(m for m in sys.modules if m.startswith(('dask', 'distributed')))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


REGRESSION = SPEC.replace("type: tanh", "type: relu").replace("type: bce", "type: mse")


def test_a_diverged_trial_is_a_row_and_the_sweep_goes_on(
    tmp_path: Path, local_cluster: str
) -> None:
    """A trial that diverges is a row with status ``diverged``; the command exits 0 because
    another trial finished."""
    spec = tmp_path / "reg.yaml"
    spec.write_text(REGRESSION)
    out = tmp_path / "sweep"
    args = ["sweep", str(spec), "--grid", "train.optimizer.lr=0.01,1e200", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--scheduler", local_cluster])
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in _rows(out)] == ["done", "diverged"]
    assert result.stdout.index("trial-001") < result.stdout.index("trial-002")  # ranked
    progress = result.stderr.splitlines()  # trials done, running, waiting, failed; the ETA
    assert re.fullmatch(
        r"sweep: 0 done, (\d) running, (\d) waiting, 0 failed \(of 2\)", progress[0]
    )
    assert any(line.startswith("sweep: trial-002 diverged: ") for line in progress)
    assert progress[-1] == "sweep: 1 done, 0 running, 0 waiting, 1 failed (of 2)"


def test_ctrl_c_keeps_finished_trials_and_resume_finishes_the_sweep(
    spec_file: Path, tmp_path: Path, local_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C cancels the running trials, keeps the finished ones, writes sweep.csv and exits
    130; ``--resume`` trains the rest to the same bits as an uninterrupted sweep."""
    from graphnet import sweeps

    written = sweeps._write_folder
    calls = []

    def interrupted_after_one(path: Path, files: dict) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        written(path, files)

    monkeypatch.setattr(sweeps, "_write_folder", interrupted_after_one)
    out = tmp_path / "sweep"
    args = ["sweep", str(spec_file), "--grid", "train.optimizer.lr=0.1,0.3", "--seeds", "2"]
    args += ["--out", str(out), "--scheduler", local_cluster]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 130, result.output
    statuses = [r["status"] for r in _rows(out)]
    assert statuses.count("done") == 1 and statuses.count("interrupted") == 3
    monkeypatch.setattr(sweeps, "_write_folder", written)
    result = CliRunner().invoke(cli, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in _rows(out)] == ["done"] * 4
    _same_as_plain_runs(spec_file, out, tmp_path)


def test_an_interrupted_trial_resumes_from_the_checkpoint_its_worker_sent(
    tmp_path: Path, local_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers send each checkpoint to the client, which writes it into the trial's folder: a
    Ctrl-C keeps the epochs done so far, and ``--resume`` continues from them (the rows of
    metrics.csv up to the checkpoint are kept as they were, timings included) to the same bits
    as an uninterrupted run."""
    from graphnet import sweeps

    spec = tmp_path / "long.yaml"
    spec.write_text(SPEC.replace("epochs: 3", "epochs: 150\n  checkpoint_every: 0"))
    written = sweeps._write_folder
    kept: dict[str, str] = {}

    def interrupted_after_a_checkpoint(path: Path, files: dict) -> None:
        written(path, files)
        if "results.json" not in files and not kept:  # a checkpoint of a trial still running
            kept[path.name] = (path / "metrics.csv").read_text()
            raise KeyboardInterrupt

    monkeypatch.setattr(sweeps, "_write_folder", interrupted_after_a_checkpoint)
    out = tmp_path / "sweep"
    args = ["sweep", str(spec), "--grid", "train.optimizer.lr=0.1", "--seeds", "2"]
    args += ["--out", str(out), "--scheduler", local_cluster]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 130, result.output
    [(trial, metrics)] = kept.items()
    row = next(r for r in _rows(out) if r["trial"] == trial)
    epochs = len(metrics.splitlines()) - 1
    assert row["status"] == "interrupted" and int(row["epochs"]) >= epochs > 0
    metrics = (out / trial / "metrics.csv").read_text()  # the newest checkpoint's rows
    assert (out / trial / "checkpoint.npz").is_file()

    monkeypatch.setattr(sweeps, "_write_folder", written)
    result = CliRunner().invoke(cli, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in _rows(out)] == ["done", "done"]
    resumed = (out / trial / "metrics.csv").read_text()
    assert resumed.startswith(metrics) and len(resumed.splitlines()) == 151  # continued
    _same_as_plain_runs(spec, out, tmp_path)


def test_a_worker_killed_mid_trial_is_retried_from_its_newest_checkpoint(
    tmp_path: Path,
) -> None:
    """kill -9 of the worker process running a trial: the scheduler gives the trial to another
    worker (the nanny starts a new process), which continues from the newest checkpoint the
    lost one sent (the rows of metrics.csv written before the kill are kept as they were,
    timings included), and the sweep ends with every trial done, each the same bits as a
    plain run."""
    import signal
    import threading

    from distributed import Client, LocalCluster

    from graphnet.sweeps import BLAS_ENV

    spec = tmp_path / "long.yaml"
    spec.write_text(SPEC.replace("epochs: 3", "epochs: 400\n  checkpoint_every: 0"))
    out = tmp_path / "sweep"
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=dict(BLAS_ENV),
            silence_logs=50,
        ) as cluster,
        Client(cluster) as client,
    ):
        rows: list = []
        sweeping = threading.Thread(
            target=lambda: rows.extend(
                graphnet.sweep(
                    spec, GRID, seeds=2, scheduler=cluster.scheduler_address, out_dir=out
                )
            )
        )
        sweeping.start()
        deadline = time.monotonic() + 60
        before = ""
        while not before and time.monotonic() < deadline:
            busy = [(w, k) for w, keys in client.processing().items() for k in keys]
            for worker, key in busy:  # a trial whose checkpoints have reached its folder
                trial = re.search(r"trial-\d+", key)
                folder = out / trial.group() if trial else out
                if (folder / "checkpoint.npz").is_file():
                    victim, before = worker, (folder / "metrics.csv").read_text()
                    break
            time.sleep(0.02)
        assert before, "no trial sent a checkpoint"
        pids = client.run(os.getpid)
        os.kill(pids[victim], signal.SIGKILL)
        sweeping.join(120)
        assert not sweeping.is_alive()
        assert pids[victim] not in client.run(os.getpid).values()  # a new process took over
    assert [r["status"] for r in rows] == ["done"] * 4
    after = (folder / "metrics.csv").read_text()
    assert after.startswith(before) and len(after.splitlines()) == 401  # continued, not anew
    _same_as_plain_runs(spec, out, tmp_path)


PLUGIN = '''\
import graphnet


class Halve(graphnet.Layer):
    """y = x / 2, a layer no worker has installed."""

    type = "halve"

    def forward(self, params, inputs, training):
        return inputs[0] / 2, None

    def backward(self, params, cache, grad):
        return [grad / 2], {}


@graphnet.hookimpl
def graphnet_layers():
    return [Halve]
'''


def test_a_plugin_file_is_sent_to_workers_that_share_no_disk(
    tmp_path: Path, remote_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--plugin file.py`` (a path relative to the client's folder, meaningless to the worker
    in a folder of its own): the worker gets the file's source and trains with it; the trial is
    the same bits as a plain run with the plugin."""
    monkeypatch.chdir(tmp_path)
    plugin = tmp_path / "halving.py"
    plugin.write_text(PLUGIN)
    spec = tmp_path / "halved.yaml"
    spec.write_text(
        SPEC.replace(
            "  - {name: act, type: tanh, inputs: [hidden]}",
            "  - {name: half, type: halve, inputs: [hidden]}\n"
            "  - {name: act, type: tanh, inputs: [half]}",
        )
    )
    out = tmp_path / "sweep"
    args = ["--plugin", plugin.name, "sweep", str(spec), "--grid", "train.optimizer.lr=0.1,0.3"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--scheduler", remote_scheduler])
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in _rows(out)] == ["done", "done"]
    for row in _rows(out):
        plain = tmp_path / f"plain-{row['trial']}"
        overrides = {"train.optimizer.lr": float(row["train.optimizer.lr"]), "seed": 0}
        graphnet.train(graphnet.load_spec(spec, overrides, plugins=[str(plugin)]), plain)
        a, b = np.load(plain / "weights.npz"), np.load(out / row["trial"] / "weights.npz")
        assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_a_spec_with_blocks_sweeps_its_block_options(tmp_path: Path, local_cluster: str) -> None:
    """A spec whose blocks come from an include sweeps a block option: every trial trains (its
    worker has no include file), saves its blocks, and is the plain run of its overrides."""
    (tmp_path / "mlp.yaml").write_text(
        "blocks:\n  mlp:\n    inputs: [i]\n    options: {units: 4}\n    nodes:\n"
        "      - {name: fc, type: dense, inputs: [i], units: $units}\n"
        "      - {name: act, type: tanh, inputs: [fc]}\n    output: act\n"
    )
    spec = tmp_path / "blocks.yaml"
    spec.write_text(
        SPEC.replace("nodes:\n", "include: [mlp.yaml]\nnodes:\n").replace(
            "  - {name: hidden, type: dense, inputs: [x], units: 4}\n"
            "  - {name: act, type: tanh, inputs: [hidden]}\n",
            "  - {name: act, type: mlp, inputs: [x]}\n",
        )
    )
    out = tmp_path / "sweep"
    grid = {"nodes.act.units": [2, 3]}
    rows = graphnet.sweep(spec, grid, scheduler=local_cluster, out_dir=out)
    assert [r["status"] for r in rows] == ["done"] * 2, rows
    saved = (out / "trial-002" / "spec.yaml").read_text()
    assert "blocks:\n  mlp:" in saved and "units: 3" in saved and "include" not in saved
    for row in rows:
        overrides = {"nodes.act.units": row["nodes.act.units"], "seed": row["seed"]}
        plain = tmp_path / f"plain-{row['trial']}"
        graphnet.train(graphnet.load_spec(spec, overrides), plain)
        trained = (out / row["trial"] / "weights.npz").read_bytes()
        assert (plain / "weights.npz").read_bytes() == trained


def test_a_script_without_the_main_guard_is_told_why_its_workers_did_not_start(
    spec_file: Path, tmp_path: Path
) -> None:
    """Worker processes import the script that starts a local cluster: a script that calls
    ``graphnet.sweep`` at its top level gets a message saying so, not only the workers' own
    tracebacks."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import graphnet\n"
        f"graphnet.sweep({str(spec_file)!r}, {GRID!r}, workers=1, out_dir={str(tmp_path / 's')!r})\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode != 0
    assert 'call it under `if __name__ == "__main__":`' in result.stderr


def test_the_command_prints_progress_and_the_table_and_nothing_else(
    spec_file: Path, tmp_path: Path
) -> None:
    """``graphnet sweep`` as a process on its own local cluster: stderr holds the progress lines
    and nothing from dask (no log lines, no tracebacks), stdout the ranked table."""
    out = tmp_path / "sweep"
    args = ["sweep", str(spec_file), "--grid", "train.optimizer.lr=0.1,0.3", "--seeds", "2"]
    result = subprocess.run(
        [sys.executable, "-m", "graphnet", *args, "--workers", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines(), "no progress"
    assert all(line.startswith("sweep: ") for line in result.stderr.splitlines()), result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["trial", "train.optimizer.lr"]
    assert len(result.stdout.splitlines()) == 5
