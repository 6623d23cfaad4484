"""Benchmark graphnet against hand-written numpy on the five workloads of bench/.

    python bench/run.py [--workload W1,W2,W3,W4,W5] [--repeats N] [--startup]

Each workload trains through graphnet's Python API and through its reference in
bench/references.py, alternating in one process after a warm-up, from the same initial weights
and data; the two must reach the same losses and weights. Training time is the wall time of
graphnet's whole epoch loop less its checkpoints (so whatever a run does per epoch counts)
and the reference's own loop; W1, W3 and W4 train full-batch epochs, one step each, so that
the per-epoch costs count as often as the steps; the table gives medians, the median
of the per-round ratios graphnet / reference, graphnet's fixed cost outside the epochs (the data
load and drawing loss.png reported apart), and the peak memory of each side, each measured in a
child process of its own (the reference's child imports numpy only). Where PyTorch is
installed, W5 (the convolutional network) is also trained by torch from the same weights, data
and order, with as many threads as numpy's BLAS, and its time is given beside the others.
Then the start-up and fixed cost of whole `graphnet` processes (bench/startup.py): --help,
validate, summary, graph, run with one epoch and predict, as ratios against a bare interpreter
that imports graphnet's dependencies; `--startup` measures only these.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import startup  # noqa: E402
from references import REFERENCES  # noqa: E402

SPECS = {
    "W1": "w1_seed.yaml",
    "W2": "w2_mlp.yaml",
    "W3": "w3_wide.yaml",
    "W4": "w4_deep.yaml",
    "W5": "w5_conv.yaml",
}
DATA: dict[str, tuple[str, int, Any, int, Any, bool]] = {
    # file name, samples, per-sample input shape, target width, float type, integer labels
    "W2": ("w2.npz", 60_000, 784, 10, np.float32, True),
    "W3": ("w3.npz", 512, 2048, 2048, np.float32, False),
    "W4": ("w4.npz", 64, 32, 32, np.float64, False),
    "W5": ("w5.npz", 6_000, (28, 28, 1), 10, np.float32, True),
}
# Multiply-adds x 2 of one W5 training step per sample: conv 1 forward and dW (no input
# gradient: it reads a graph input), conv 2 forward, dW and dX, the dense layer's three.
W5_FLOPS = 2 * (2 * 784 * 9 * 16 + 3 * 196 * 144 * 32 + 3 * 1568 * 10)


def write_data(workload: str, folder: Path) -> Path | None:
    """The workload's random data set as an NPZ file (W1 uses graphnet's synthetic source)."""
    if workload not in DATA:
        return None
    name, n, width, out, dtype, labels = DATA[workload]
    path = folder / name
    if not path.exists():
        rng = np.random.default_rng(1)
        shape = width if isinstance(width, tuple) else (width,)
        x = rng.standard_normal((n, *shape), dtype=np.float32).astype(dtype)
        if labels:
            y = rng.integers(0, out, (n, 1)).astype(dtype)
        else:
            y = rng.standard_normal((n, out), dtype=np.float32).astype(dtype)
            if workload == "W4":
                y *= 0.1
        np.savez(path, x=x, y=y)
    return path


def load(workload: str, folder: Path) -> Any:
    import graphnet

    data_path = write_data(workload, folder)
    overrides = {"data.path": str(data_path)} if data_path else {}
    return graphnet.load_spec(HERE / SPECS[workload], overrides=overrides)


def reference_inputs(workload: str, spec: Any) -> tuple[dict, dict, dict]:
    """The data, initial weights and extra arguments both sides start from."""
    import graphnet
    from graphnet.dataset import load_data, streams

    data = load_data(spec, streams(spec.seed)["data"])
    init = graphnet.build(spec).weights()
    if workload == "W4":  # 100 residual blocks need small weights to stay finite
        init = {k: v * 0.1 if k.endswith("/W") else v for k, v in init.items()}
    extra = {}
    if workload in ("W2", "W5"):  # graphnet's shuffling order for the one epoch
        extra["order"] = streams(spec.seed)["train"].permutation(len(data["x"]))
    return data, init, extra


def time_graphnet(
    spec: Any, init: dict, out: Path
) -> tuple[float, float, float, float, list, dict]:
    """Training time, the fixed cost around it, and the two parts of the run reported apart:
    loading the data and drawing loss.png.

    Training time is the wall time of the epoch loop, everything it does between and around
    the epochs included (not only the epochs' own ``seconds``; metrics.csv's rows too), less
    the checkpoints and best.npz it writes, which count as fixed cost."""
    import graphnet

    spent = _timed_calls(
        ("graphnet.run", "prepare"),
        ("graphnet.plots", "try_draw_run"),
        ("graphnet.run", "_loop"),
        ("graphnet.runfolder", "RunFolder.write_checkpoint"),
        ("graphnet.runfolder", "RunFolder.write_best"),
    )
    started = time.perf_counter()
    history = graphnet.train(spec, out_dir=out, weights=init)
    total = time.perf_counter() - started
    writing = spent["write_checkpoint"] + spent["write_best"]
    training = spent["_loop"] - writing
    weights = dict(np.load(out / "weights.npz"))
    loading, drawing = spent["prepare"], spent["try_draw_run"]
    fixed = total - training - loading - drawing
    return training, fixed, loading, drawing, [r["loss"] for r in history], weights


def _timed_calls(*functions: tuple[str, str]) -> dict[str, float]:
    """Seconds spent in these functions (module, name or Class.method) during the next run,
    keyed by the function's own name."""
    import importlib

    spent = dict.fromkeys((path.rpartition(".")[2] for _, path in functions), 0.0)
    for module_name, path in functions:
        owner: Any = importlib.import_module(module_name)
        *classes, name = path.split(".")
        for class_name in classes:
            owner = getattr(owner, class_name)
        original = getattr(owner, f"_untimed_{name}", getattr(owner, name))
        setattr(owner, f"_untimed_{name}", original)

        def timed(*args: Any, _name: str = name, _original: Any = original) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args)
            finally:
                spent[_name] += time.perf_counter() - started

        setattr(owner, name, timed)
    return spent


def check_same(
    workload: str, dtype: np.dtype, ours: tuple[list, dict], theirs: tuple[list, dict]
) -> float:
    """The largest relative difference of losses and weights; fails beyond float tolerance."""
    tolerance = 1e-9 if dtype == np.float64 else 1e-5
    worst = 0.0
    for a, b in zip(ours[0], theirs[0], strict=True):
        worst = max(worst, abs(a - b) / max(abs(b), 1e-12))
    for key, value in theirs[1].items():
        diff = np.abs(ours[1][key].astype(np.float64) - value) / (np.abs(value).max() + 1e-12)
        worst = max(worst, float(diff.max()))
    if worst > tolerance:
        raise SystemExit(
            f"{workload}: graphnet and the reference differ by {worst:.2e} (> {tolerance:g})"
        )
    return worst


def matmul_peak(repeats: int = 5) -> float:
    """numpy's own 2048x2048 float32 matmul in GFLOP/s, best of several."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    b = a.copy()
    c = np.empty_like(a)
    np.matmul(a, b, out=c)
    best = min(_timed(lambda: np.matmul(a, b, out=c)) for _ in range(repeats))
    return 2 * 2048**3 / best / 1e9


def _timed(f: Any) -> float:
    started = time.perf_counter()
    f()
    return time.perf_counter() - started


def child(side: str, workload: str, folder: Path) -> None:
    """Run one side once and print its peak resident memory in MiB."""
    if side == "graphnet":
        import graphnet

        spec = load(workload, folder)
        init = dict(np.load(folder / f"init-{workload}.npz"))
        graphnet.train(spec, out_dir=folder / f"memory-{workload}", weights=init)
    else:  # numpy only: the data and weights as the parent saved them
        with np.load(folder / f"reference-{workload}.npz") as saved:
            arrays = dict(saved)
        data = {k[5:]: v for k, v in arrays.items() if k.startswith("data/")}
        init = {k[5:]: v for k, v in arrays.items() if k.startswith("init/")}
        extra = {k[6:]: v for k, v in arrays.items() if k.startswith("extra/")}
        del arrays
        REFERENCES[workload](data, init, **extra)
    print(_peak_mib())


def _peak_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    from the parent's image across fork and exec, so a child would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory(
    workload: str, folder: Path, data: dict, init: dict, extra: dict
) -> tuple[float, float]:
    np.savez(folder / f"init-{workload}.npz", **init)
    arrays = {
        **{f"data/{k}": v for k, v in data.items()},
        **{f"init/{k}": v for k, v in init.items()},
    }
    arrays.update({f"extra/{k}": v for k, v in extra.items()})
    np.savez(folder / f"reference-{workload}.npz", **arrays)
    del arrays
    peaks = []
    for side in ("graphnet", "reference"):
        command = [
            sys.executable,
            __file__,
            "--child",
            side,
            "--workload",
            workload,
            "--folder",
            str(folder),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks.append(float(result.stdout.strip().splitlines()[-1]))
    return peaks[0], peaks[1]


def bench(workload: str, repeats: int, folder: Path, memory: bool) -> dict:
    spec = load(workload, folder)
    data, init, extra = reference_inputs(workload, spec)
    reference = REFERENCES[workload]
    ours, fixed, loading, drawing, theirs = [], [], [], [], []
    for repeat in range(repeats + 1):  # the first round warms up and is not counted
        out = folder / f"run-{workload}-{repeat}"
        training, fixed_cost, loaded, drawn, losses, weights = time_graphnet(spec, init, out)
        ref_weights, ref_losses, ref_seconds = reference(data, init, **extra)
        if repeat == 0:
            difference = check_same(
                workload, np.dtype(spec.dtype), (losses, weights), (ref_losses, ref_weights)
            )
            continue
        ours.append(training)
        fixed.append(fixed_cost)
        loading.append(loaded)
        drawing.append(drawn)
        theirs.append(ref_seconds)
    row = {
        "workload": workload,
        "reference_s": statistics.median(theirs),
        "graphnet_s": statistics.median(ours),
        "ratio": statistics.median(a / b for a, b in zip(ours, theirs, strict=True)),
        "fixed_s": statistics.median(fixed),
        "data_load_s": statistics.median(loading),
        "drawing_s": statistics.median(drawing),
        "difference": difference,
    }
    if workload == "W3":
        flops = 6 * 512 * 3 * 2048 * 2048 * 30
        row["gflops"] = flops / row["graphnet_s"] / 1e9
        row["peak_gflops"] = matmul_peak()
    if workload == "W5":
        row["gflops"] = W5_FLOPS * len(data["x"]) / row["graphnet_s"] / 1e9
        row["reference_gflops"] = W5_FLOPS * len(data["x"]) / row["reference_s"] / 1e9
        torch_times = time_torch_w5(data, init, extra["order"], repeats)
        if torch_times:
            row["torch_s"] = statistics.median(torch_times)
            row["torch_ratio"] = row["graphnet_s"] / row["torch_s"]
    if memory:
        row["graphnet_mib"], row["reference_mib"] = peak_memory(workload, folder, data, init, extra)
    return row


def time_torch_w5(data: dict, init: dict, order: np.ndarray, repeats: int) -> list[float]:
    """W5 trained by PyTorch (NCHW) from the same weights, data and order: training seconds
    per counted round, or nothing where torch is not installed."""
    try:
        import torch
    except ImportError:
        return []
    import os

    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(int(threads) if threads else os.cpu_count() or 1)
    nn = torch.nn
    X = torch.from_numpy(np.ascontiguousarray(data["x"].transpose(0, 3, 1, 2)))
    y = torch.from_numpy(data["y"][:, 0].astype(np.int64))
    index = torch.from_numpy(order.astype(np.int64))
    times = []
    for _ in range(repeats + 1):  # the first round warms up
        net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1568, 10),
        )  # fmt: skip
        with torch.no_grad():
            for conv, name in ((net[0], "c1"), (net[3], "c2")):
                conv.weight.copy_(torch.from_numpy(init[f"{name}/W"].transpose(3, 2, 0, 1).copy()))
                conv.bias.copy_(torch.from_numpy(init[f"{name}/b"]))
            # graphnet flattens [7, 7, 32] (channels last); torch flattens [32, 7, 7]
            W = init["logits/W"].reshape(7, 7, 32, 10).transpose(2, 0, 1, 3).reshape(1568, 10)
            net[7].weight.copy_(torch.from_numpy(W.T.copy()))
            net[7].bias.copy_(torch.from_numpy(init["logits/b"]))
        optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
        started = time.perf_counter()
        for start in range(0, len(index), 64):
            batch = index[start : start + 64]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(X[batch]), y[batch])
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--workload", default="W1,W2,W3,W4,W5", help="comma-separated: W1,W2,W3,W4,W5"
    )
    parser.add_argument("--repeats", type=int, default=5, help="counted rounds per workload")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    parser.add_argument(
        "--startup", action="store_true", help="only the start-up and fixed-cost figures"
    )
    parser.add_argument("--child", choices=["graphnet", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    workloads = [w.strip().upper() for w in args.workload.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in SPECS]
    if unknown:
        parser.error(f"unknown workload {unknown[0]}; choose from {', '.join(SPECS)}")
    if args.child:
        child(args.child, workloads[0], args.folder)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="graphnet-bench-") as tmp:
        for workload in [] if args.startup else workloads:
            rows.append(bench(workload, args.repeats, Path(tmp), not args.no_memory))
            print(_format(rows[-1]), flush=True)
    started = startup.bench(args.repeats)
    print(startup.format_rows(started, args.repeats), flush=True)
    rows += started
    if args.json:
        print(json.dumps(rows, indent=2))


def _format(row: dict) -> str:
    text = (
        f"{row['workload']}: reference {row['reference_s']:.3f} s, graphnet {row['graphnet_s']:.3f} s, "
        f"ratio {row['ratio']:.3f}; fixed cost {row['fixed_s']:.3f} s + data load "
        f"{row['data_load_s']:.3f} s (+ loss.png {row['drawing_s']:.2f} s)"
    )
    if "graphnet_mib" in row:
        ratio = row["graphnet_mib"] / row["reference_mib"]
        text += f"; peak memory {row['graphnet_mib']:.0f} / {row['reference_mib']:.0f} MiB ({ratio:.2f}x)"
    if "torch_s" in row:
        text += f"; torch {row['torch_s']:.3f} s (graphnet / torch {row['torch_ratio']:.3f})"
    if "reference_gflops" in row:
        text += f"; {row['gflops']:.1f} GFLOP/s (reference {row['reference_gflops']:.1f})"
    elif "gflops" in row:
        share = 100 * row["gflops"] / row["peak_gflops"]
        text += f"; {row['gflops']:.1f} GFLOP/s = {share:.0f} % of the matmul peak {row['peak_gflops']:.1f}"
    return text + f" (same results to {row['difference']:.1e})"


if __name__ == "__main__":
    main()
