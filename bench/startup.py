"""Start-up and fixed cost: whole ``graphnet`` processes against a bare interpreter.

    python bench/startup.py [--repeats N]        (or: python bench/run.py --startup)

The yardstick is a fresh interpreter importing graphnet's own dependencies,
``python -c "import numpy, pydantic, yaml, click, pluggy"``. Each round runs the yardstick and
then each command as a fresh process, alternating, and takes each command's ratio to the
yardstick run just before it; the figures are medians over the rounds, after one round that
is not counted (it also writes the bytecode caches, which these children are allowed to do
whatever PYTHONDONTWRITEBYTECODE says, as any installed copy has them). The commands:
``--help``, ``--version``, ``validate``, ``summary`` and ``graph`` (text) of specs/seed.yaml,
``run specs/seed.yaml --set train.epochs=1`` (loss.png included) and ``predict`` of that run on a
10-row CSV file. The fixed cost of ``run`` is its whole process minus the seconds of its epoch
(metrics.csv's ``seconds``). Timed with ``subprocess`` and ``time.perf_counter`` only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "specs" / "seed.yaml"
BARE = [sys.executable, "-c", "import numpy, pydantic, yaml, click, pluggy"]


def graphnet_command() -> list[str]:
    """The installed ``graphnet`` script beside this interpreter, else ``python -m graphnet``."""
    script = Path(sys.executable).parent / "graphnet"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "graphnet"]


def commands(folder: Path) -> dict[str, list[str]]:
    """Each timed command line, by the name it is printed under; ``{round}`` is replaced by the
    round's number (a run writes a new folder every round)."""
    graphnet, seed = graphnet_command(), str(SEED)
    predict_input = folder / "inputs.csv"
    with predict_input.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x_0", "x_1"])
        writer.writerows([[i / 10, 1 - i / 10] for i in range(10)])
    return {
        "--help": [*graphnet, "--help"],
        "--version": [*graphnet, "--version"],
        "validate": [*graphnet, "validate", seed],
        "summary": [*graphnet, "summary", seed],
        "graph": [*graphnet, "graph", seed],
        "run --set train.epochs=1": [
            *graphnet,
            *("run", seed, "--set", "train.epochs=1", "--quiet"),
            *("--out", str(folder / "run-{round}")),
        ],
        "predict": [*graphnet, "predict", str(folder / "run-0"), "--input", str(predict_input)],
    }


def timed(command: list[str], environment: dict[str, str]) -> float:
    """Wall seconds of one whole process; it must succeed."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, env=environment, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr.decode()}")
    return seconds


def epoch_seconds(run_dir: Path) -> float:
    """The seconds of a run's epochs, from its metrics.csv."""
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle))


def bench(repeats: int) -> list[dict[str, Any]]:
    """One row per command: median seconds, the bare interpreter's, and their ratio."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="graphnet-startup-") as tmp:
        folder = Path(tmp)
        lines = commands(folder)
        seconds: dict[str, list[float]] = {name: [] for name in [*lines, "fixed"]}
        bare: dict[str, list[float]] = {name: [] for name in seconds}
        for repeat in range(repeats + 1):  # round 0 warms up and is not counted
            for name, line in lines.items():
                yardstick = timed(BARE, environment)
                whole = timed([part.format(round=repeat) for part in line], environment)
                if repeat == 0:
                    continue
                seconds[name].append(whole)
                bare[name].append(yardstick)
                if name.startswith("run"):
                    run_dir = folder / f"run-{repeat}"
                    seconds["fixed"].append(whole - epoch_seconds(run_dir))
                    bare["fixed"].append(yardstick)
    return [
        {
            "command": name,
            "seconds": statistics.median(seconds[name]),
            "bare_s": statistics.median(bare[name]),
            "ratio": statistics.median(
                s / b for s, b in zip(seconds[name], bare[name], strict=True)
            ),
        }
        for name in seconds
    ]


def format_rows(rows: list[dict[str, Any]], repeats: int) -> str:
    bare = statistics.median(row["bare_s"] for row in rows)
    lines = [
        f'start-up, whole processes against `python -c "import numpy, pydantic, yaml, click, '
        f'pluggy"` ({bare:.3f} s), medians of {repeats} alternating rounds:'
    ]
    for row in rows:
        name = row["command"]
        label = (
            "run: fixed cost (the process minus its epoch's seconds)"
            if name == "fixed"
            else f"graphnet {name}"
        )
        lines.append(f"  {label:58s} {row['seconds']:6.3f} s  {row['ratio']:5.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="counted rounds")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    rows = bench(args.repeats)
    print(format_rows(rows, args.repeats))
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
