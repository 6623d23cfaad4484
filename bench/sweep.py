"""Time a sweep: the S1 workload's 4 trials (2 learning rates x 2 seeds) three ways.

    python bench/sweep.py [--repeats N] [--workers 1,2]

``loop``: ``graphnet.train`` once per trial, one after the other in this process (the sweep's
trials by hand); ``workers=N``: ``graphnet.sweep`` on a LocalCluster of N processes, cluster
start-up included (what ``graphnet sweep --workers N`` costs end to end). Each prints the
median wall time of its rounds and its ratio to the loop; every way must give the same
weights.
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
GRID = {"train.optimizer.lr": [0.05, 0.1]}
SEEDS = 2


def loop(out: Path) -> None:
    k = 0
    for lr in GRID["train.optimizer.lr"]:
        for seed in range(SEEDS):
            k += 1
            spec = graphnet.load_spec(SPEC, {"train.optimizer.lr": lr, "seed": seed})
            graphnet.train(spec, out / f"trial-{k:03d}")


def weights(out: Path) -> list[bytes]:
    files = sorted(out.glob("trial-*/weights.npz"))
    return [b"".join(np.load(f)[k].tobytes() for k in sorted(np.load(f))) for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    ways = ["loop", *(f"workers={n}" for n in args.workers.split(","))]
    times: dict[str, list[float]] = {w: [] for w in ways}
    reference: list[bytes] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for way in ways:
                out = Path(tmp) / f"{way}-{r}"
                start = time.perf_counter()
                if way == "loop":
                    loop(out)
                else:
                    graphnet.sweep(SPEC, GRID, SEEDS, workers=int(way.split("=")[1]), out_dir=out)
                times[way].append(time.perf_counter() - start)
                got = weights(out)
                reference = reference or got
                assert got == reference, f"{way}: weights differ from the loop's"
    base = statistics.median(times["loop"])
    print(f"S1 sweep, 4 trials, median of {args.repeats} rounds", file=sys.stderr)
    for way in ways:
        median = statistics.median(times[way])
        print(f"{way:10s} {median:7.2f} s   loop / this = {base / median:.2f}")


if __name__ == "__main__":
    main()
