"""How the default detector's fit cost grows with rows and columns, and its peak memory.

Fits :func:`aepipe.make_default_detector` on synthetic tables (a low-rank
Gaussian factor model plus noise, 2 % shifted records) of growing size, each
in a fresh subprocess so its peak resident memory (``ru_maxrss``) is its own
(after a tiny warm-up fit, so torch's one-time initialisation is not timed),
and prints fit time, scoring time and peak memory per size, then the
exponent ``b`` of ``time ~ size ** b`` fitted by least squares on the log-log
points (``b <= 1``: at most linear growth).

Two sweeps: rows (1k to 100k at ``--columns``) and columns (10 to 1,000 at
``--rows``), plus one fit at the widest real shape of the benchmark tables
(30,000 x 1,555, ``--big``).

Example
-------
    python pipelines/benchmark_scaling.py
    python pipelines/benchmark_scaling.py --row-sweep 1000 10000 --column-sweep 10 100 --no-big
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[3]))
rows, columns = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
rank = max(1, columns // 10)
X = (rng.normal(size=(rows, rank)) @ rng.normal(size=(rank, columns))
     + 0.3 * rng.normal(size=(rows, columns))).astype(np.float32)
X[: rows // 50] += 4.0
from aepipe import make_default_detector
# Warm up torch's one-time initialisation so that it is not timed as the fit.
make_default_detector(random_state=0, training_steps=2).fit(X[:64, : min(columns, 8)])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
detector = make_default_detector(random_state=0)
start = time.perf_counter()
detector.fit(X)
fit_s = time.perf_counter() - start
start = time.perf_counter()
detector.score_samples(X)
score_s = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "columns": columns, "fit_s": fit_s, "score_s": score_s,
                  "data_mib": X.nbytes / 2**20, "peak_mib": peak / 1024,
                  "before_mib": before / 1024}))
"""


def measure(rows: int, columns: int, threads: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(columns), str(threads)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def exponent(sizes, times) -> float:
    """Least-squares slope of log(time) on log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def sweep(label: str, shapes, threads: int) -> None:
    results = [measure(rows, columns, threads) for rows, columns in shapes]
    print(f"\n{label}")
    print(f"{'rows':>8s} {'columns':>8s} {'fit s':>8s} {'score s':>8s} {'data MiB':>9s} "
          f"{'peak MiB':>9s}")
    for r in results:
        print(f"{r['rows']:8d} {r['columns']:8d} {r['fit_s']:8.2f} {r['score_s']:8.2f} "
              f"{r['data_mib']:9.1f} {r['peak_mib']:9.0f}")
    size = [r["rows"] * r["columns"] for r in results]
    print(f"fit-time exponent b (time ~ size^b): {exponent(size, [r['fit_s'] for r in results]):.2f}"
          f"   scoring: {exponent(size, [r['score_s'] for r in results]):.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the column sweep")
    parser.add_argument("--columns", type=int, default=20, help="columns in the row sweep")
    parser.add_argument("--row-sweep", type=int, nargs="+",
                        default=[1_000, 3_000, 10_000, 30_000, 100_000])
    parser.add_argument("--column-sweep", type=int, nargs="+", default=[10, 30, 100, 300, 1_000])
    parser.add_argument("--no-big", action="store_true", help="skip the 30,000 x 1,555 fit")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    sweep(f"rows ({args.columns} columns)", [(n, args.columns) for n in args.row_sweep],
          args.threads)
    sweep(f"columns ({args.rows} rows)", [(args.rows, d) for d in args.column_sweep],
          args.threads)
    if not args.no_big:
        r = measure(30_000, 1_555, args.threads)
        print(f"\n30,000 x 1,555: fit {r['fit_s']:.1f} s, score {r['score_s']:.1f} s, "
              f"data {r['data_mib']:.0f} MiB, peak resident {r['peak_mib']:.0f} MiB "
              f"({r['peak_mib'] / r['data_mib']:.1f} x the data)")


if __name__ == "__main__":
    main()
