"""Memory and time of fitting and scoring a table with a categorical column of thousands of levels.

The table: 20,000 records, 4 real columns and one categorical column of
4,900 categories (the size that took 1.7-3 GB and minutes with a dense
one-hot encoding). Each category has a position in a 2-D space that
drives the real columns, so the category and the numbers must agree; 2 % of
the records are anomalies whose category was swapped for another one.

Each configuration runs in a fresh process (``--run``), which reports its
peak resident memory (``getrusage``'s ``ru_maxrss``) above what it held
once the data was built (so imports and data do not count), the peak of the
NumPy/Python allocations (``tracemalloc``; torch's own allocator is not
traced there, RSS sees it), fit and scoring time -- wall clock and the
process's CPU time, which other work on a shared core does not inflate --
and the ROC-AUC of the scores.

Encodings compared, for aepipe's default detector and an ``Autoencoder``:

- ``one-hot``: what aepipe did for every categorical column -- each
  category a column of the encoded matrix, network sizes counted from the
  one-hot width (reproduced by setting the estimators' ``_max_one_hot`` to
  None);
- ``index``: today's handling of a column of more than 64 categories --
  one number per record, expanded to one-hot a batch at a time, and
  ``"auto"`` sizes counting the column as ``log2(4900) = 13`` inputs.

Examples
--------
    python pipelines/benchmark_categories.py
    python pipelines/benchmark_categories.py --configs default:index ae:index
    python pipelines/benchmark_categories.py --configs default:one-hot default:index --seed 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

N_ROWS, N_LEVELS, ANOMALY_SHARE = 20_000, 4_900, 0.02
CONFIGS = ["default:one-hot", "default:index", "ae:one-hot", "ae:index"]


def make_table(seed=0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    position = rng.normal(size=(N_LEVELS, 2))
    level = rng.integers(0, N_LEVELS, size=N_ROWS)
    numbers = position[level] @ rng.normal(size=(2, 4)) + 0.2 * rng.normal(size=(N_ROWS, 4))
    y = np.zeros(N_ROWS, dtype=int)
    bad = rng.choice(N_ROWS, size=int(ANOMALY_SHARE * N_ROWS), replace=False)
    y[bad] = 1
    level[bad] = rng.integers(0, N_LEVELS, size=len(bad))  # a category that does not fit
    frame = pd.DataFrame(numbers, columns=[f"x{j}" for j in range(4)])
    frame["shop"] = pd.Categorical([f"shop{v:04d}" for v in level])
    return frame, y


def run(config: str, seed: int = 0) -> dict:
    import resource
    import time
    import tracemalloc

    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from aepipe import Autoencoder
    from aepipe.estimators import AutoencoderEnsemble

    torch.set_num_threads(1)
    detector, encoding = config.split(":")
    if encoding == "one-hot":  # aepipe before: a dense one-hot matrix, one-hot sizes
        Autoencoder._max_one_hot = None
        AutoencoderEnsemble._max_one_hot = None
    frame, y = make_table(seed)
    model = (AutoencoderEnsemble(random_state=0) if detector == "default"
             else Autoencoder(max_epochs=10, random_state=0))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(frame)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    scores = -model.score_samples(frame)
    score_s, score_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    layout = model.layout_
    return {"config": config, "fit_s": fit_s, "fit_cpu_s": fit_cpu_s, "score_s": score_s,
            "score_cpu_s": score_cpu_s,
            "peak_rss_mb": (peak - before) / 1024, "traced_peak_mb": traced / 2**20,
            "encoded_width": layout.n_encoded, "network_width": layout.n_expanded,
            "auroc": roc_auc_score(y, np.nan_to_num(scores))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--seed", type=int, default=0, help="draw of the table (default 0)")
    parser.add_argument("--run", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(run(args.run, args.seed)))
        return 0
    import pandas as pd

    rows = []
    for config in args.configs:
        done = subprocess.run([sys.executable, __file__, "--run", config, "--seed",
                               str(args.seed)], check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{N_ROWS:,} records x (4 real columns + 1 categorical of {N_LEVELS:,} categories), "
          f"table seed {args.seed}; one torch thread; memory above what the process held before "
          "fit")
    print(pd.DataFrame(rows).set_index("config").round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
