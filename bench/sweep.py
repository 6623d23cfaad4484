"""Time a sweep: the S1 workload's 16 trials (4 learning rates x 4 seeds) several ways.

    python bench/sweep.py [--repeats N] [--workers 1,2]

``loop``: ``graphnet.train`` once per trial, one after the other in this process (the trials
by hand, ``loss.png`` drawn as a run draws it); ``workers=N``: ``graphnet.sweep`` on a
LocalCluster of N processes, cluster start-up included (what ``graphnet sweep --workers N``
costs end to end); ``cluster=N``: starting and closing that cluster alone. It prints the
median of each, the speed-up of every ``workers=N`` over ``workers=1``, and the sweep
machinery's cost per trial: (``workers=1`` - ``cluster=1`` - ``loop``) / trials. Every way
must give the same weights.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import graphnet

SPEC = Path(__file__).resolve().parent / "s1_sweep.yaml"
GRID = {"train.optimizer.lr": [0.03, 0.05, 0.1, 0.2]}
SEEDS = 4
TRIALS = len(GRID["train.optimizer.lr"]) * SEEDS


def loop(out: Path) -> None:
    k = 0
    for lr in GRID["train.optimizer.lr"]:
        for seed in range(SEEDS):
            k += 1
            spec = graphnet.load_spec(SPEC, {"train.optimizer.lr": lr, "seed": seed})
            graphnet.train(spec, out / f"trial-{k:03d}")


def cluster(workers: int) -> None:
    """Start the local cluster a sweep of ``workers`` starts, wait for its workers, close it."""
    from graphnet.sweeps import connect

    client = connect(workers, None, {})
    client.wait_for_workers(workers)
    local = client.cluster
    client.close()
    local.close()


def weights(out: Path) -> list[bytes]:
    files = sorted(out.glob("trial-*/weights.npz"))
    return [b"".join(np.load(f)[k].tobytes() for k in sorted(np.load(f))) for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    ways = ["loop", *(f"workers={n}" for n in counts), *(f"cluster={n}" for n in counts)]
    times: dict[str, list[float]] = {w: [] for w in ways}
    reference: list[bytes] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for way in ways:
                out = Path(tmp) / f"{way}-{r}"
                kind, _, n = way.partition("=")
                start = time.perf_counter()
                if kind == "loop":
                    loop(out)
                elif kind == "workers":
                    graphnet.sweep(SPEC, GRID, SEEDS, workers=int(n), out_dir=out)
                else:
                    cluster(int(n))
                times[way].append(time.perf_counter() - start)
                if kind != "cluster":
                    got = weights(out)
                    assert len(got) == TRIALS, f"{way}: {len(got)} trials"
                    reference = reference or got
                    assert got == reference, f"{way}: weights differ from the loop's"
    median = {way: statistics.median(t) for way, t in times.items()}
    print(f"S1 sweep, {TRIALS} trials, median of {args.repeats} rounds", file=sys.stderr)
    for way in ways:
        line = f"{way:11s} {median[way]:7.2f} s"
        if way.startswith("workers="):
            line += f"   workers=1 / this = {median['workers=1'] / median[way]:.2f}"
        print(line)
    if "workers=1" in median:
        overhead = (median["workers=1"] - median["cluster=1"] - median["loop"]) / TRIALS
        print(
            f"sweep machinery per trial (workers=1 - cluster=1 - loop) / {TRIALS}: {overhead:.3f} s"
        )


if __name__ == "__main__":
    main()
