"""A worked example of learning that goes on: ``partial_fit`` on a stream whose normal behaviour drifts.

The stream: records of 8 columns driven by 3 latent factors plus noise,
arriving in chunks of 1,000. Normal behaviour drifts the whole time: every
column's level moves (up to 4 standard deviations by the end), two columns'
spread doubles, and the loadings that tie the columns to the factors turn
from one matrix to another, so the correlations change too. Each chunk holds
2 % anomalies: half break the relations between columns (two columns taken
from other records of the same chunk, each value ordinary on its own), half
are a 5-sigma excursion of one column.

Protocol (test, then train): every chunk after the first is first scored by
the current model -- false-alarm rate (normal records flagged by
``predict``), detection (anomalies flagged) and ROC-AUC -- and only then
learnt from, unlabelled, anomalies included:

- ``static``: fitted on the first chunk, never updated;
- ``partial_fit f=0``: ``partial_fit(chunk, epochs=3)`` with
  ``forgetting=0`` (all records alike);
- ``partial_fit f=0.3``: the same with ``forgetting=0.3`` (the past fades:
  the statistics remember about 3,300 records);
- ``refit``: a new model fitted on the latest chunk alone (the usual
  workaround: it forgets everything and costs a full fit per chunk).

For aepipe's default detector (``make_default_detector()``) and a plain
``Autoencoder``. Synthetic data, generated here; no data files needed.

Example
-------
    python pipelines/stream_drift.py --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

N_COLUMNS, N_FACTORS, CHUNK, N_CHUNKS = 8, 3, 1000, 10
ANOMALY_SHARE = 0.02


def make_stream(seed: int):
    """``[(X, y), ...]`` for ``N_CHUNKS`` chunks of a drifting stream (y: 1 = anomaly)."""
    rng = np.random.default_rng(seed)
    start, end = rng.normal(size=(2, N_FACTORS, N_COLUMNS))
    direction = rng.normal(size=N_COLUMNS)
    direction *= 4.0 / np.abs(direction).max()
    chunks = []
    for k in range(N_CHUNKS):
        t = (k * CHUNK + np.arange(CHUNK)) / (N_CHUNKS * CHUNK)  # 0 -> 1 over the stream
        loadings = (1 - t)[:, None, None] * start + t[:, None, None] * end
        factors = rng.normal(size=(CHUNK, N_FACTORS))
        X = np.einsum("nf,nfc->nc", factors, loadings) + 0.3 * rng.normal(size=(CHUNK, N_COLUMNS))
        X[:, :2] *= (1 + t)[:, None]                  # two columns' spread doubles
        X += t[:, None] * direction                   # every level moves
        y = np.zeros(CHUNK, dtype=int)
        bad = rng.choice(CHUNK, size=int(ANOMALY_SHARE * CHUNK), replace=False)
        y[bad] = 1
        relation, excursion = bad[: len(bad) // 2], bad[len(bad) // 2:]
        for row in relation:                          # values from other records: ordinary alone
            columns = rng.choice(N_COLUMNS, size=2, replace=False)
            X[row, columns] = X[rng.integers(CHUNK, size=2), columns]
        for row in excursion:
            column = rng.integers(N_COLUMNS)
            X[row, column] += 5.0 * X[:, column].std() * rng.choice([-1, 1])
        chunks.append((X, y))
    return chunks


def evaluate(model, X, y) -> dict:
    from sklearn.metrics import roc_auc_score

    flagged = model.predict(X) == -1
    return {"far": flagged[y == 0].mean(), "detection": flagged[y == 1].mean(),
            "auroc": roc_auc_score(y, -model.score_samples(X))}


def run(make, chunks, strategy: str, forgetting: float = 0.0):
    """Per-chunk results of one strategy, and the CPU seconds spent learning after the first fit."""
    model = make(forgetting).fit(chunks[0][0])
    rows, learn_s = [], 0.0
    for k, (X, y) in enumerate(chunks[1:], start=1):
        rows.append({"chunk": k, **evaluate(model, X, y)})
        start = time.process_time()  # CPU time: other work on a shared core does not count
        if strategy == "partial_fit":
            model.partial_fit(X, epochs=3)
        elif strategy == "refit":
            model = make(forgetting).fit(X)
        learn_s += time.process_time() - start
    return rows, learn_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from aepipe import Autoencoder, make_default_detector

    torch.set_num_threads(args.threads)
    chunks = make_stream(args.seed)
    detectors = {
        "default": lambda f: make_default_detector(random_state=args.seed, forgetting=f),
        "Autoencoder": lambda f: Autoencoder(random_state=args.seed, forgetting=f),
    }
    strategies = [("static", "static", 0.0), ("partial_fit f=0", "partial_fit", 0.0),
                  ("partial_fit f=0.3", "partial_fit", 0.3), ("refit", "refit", 0.0)]
    pd.set_option("display.width", 200)
    summary = []
    for name, make in detectors.items():
        per_chunk = {}
        for label, strategy, forgetting in strategies:
            rows, learn_s = run(make, chunks, strategy, forgetting)
            frame = pd.DataFrame(rows).set_index("chunk")
            per_chunk[label] = frame
            late = frame.loc[frame.index >= N_CHUNKS - 3]
            summary.append({
                "detector": name, "strategy": label,
                "FAR (all)": frame.far.mean(), "detection (all)": frame.detection.mean(),
                "ROC-AUC (all)": frame.auroc.mean(), "FAR (last 3)": late.far.mean(),
                "detection (last 3)": late.detection.mean(), "ROC-AUC (last 3)": late.auroc.mean(),
                "learning s": learn_s,
            })
            print(f"{name:>12} {label:>18}: FAR {frame.far.mean():.3f}, detection "
                  f"{frame.detection.mean():.3f}, ROC-AUC {frame.auroc.mean():.3f}", flush=True)
        table = pd.concat({label: f.far for label, f in per_chunk.items()}, axis=1)
        print(f"\n{name}: false-alarm rate per chunk (share of normal records flagged)")
        print(table.round(3).to_string())
        table = pd.concat({label: f.detection for label, f in per_chunk.items()}, axis=1)
        print(f"\n{name}: detection per chunk (share of anomalies flagged)")
        print(table.round(3).to_string() + "\n")
    print(f"Summary, chunks 1-{N_CHUNKS - 1} of {CHUNK} records (seed {args.seed}; learning s: "
          "CPU time spent updating after the first fit)")
    print(pd.DataFrame(summary).set_index(["detector", "strategy"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
