"""Scoring throughput: a 2-worker Dask LocalCluster versus single-process streaming.

Both modes score the same Parquet dataset (``--rows`` records of
``--features`` correlated real columns, written in ``--files`` files into a
temporary directory) with the same fitted pipeline (a small Autoencoder) and
write the same output (``[record_id,] anomaly_score, predicted_anomaly, top1_column,
top1_score, ...`` as Parquet):

- ``streaming``: one process reads record batches (pyarrow
  ``iter_batches``, ``--chunk-rows`` at a time) -> ``aepipe.scoring.score_frame``
  -> appends to one Parquet file. Torch uses its default threads.
- ``dask``: ``aepipe.distributed.score_file_distributed`` on a
  ``LocalCluster(n_workers=--workers, threads_per_worker=1, processes=True)``
  (one torch thread per worker); workers read, score and write partitions.

Each mode runs in its own subprocess so that imports, caches and peak memory
do not leak between them; peak memory is the largest summed RSS of that
subprocess and its children (the Dask scheduler, nannies and workers), sampled
every 0.1 s. Wall time covers reading, scoring and writing; the cluster start
and the workers' imports are reported separately as start-up. The temporary directory is removed
at the end.

Examples
--------
    python pipelines/benchmark_dask_scoring.py                  # 10,000,000 rows
    python pipelines/benchmark_dask_scoring.py --rows 1000000 --files 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


# ---------------------------------------------------------------- helpers
class PeakMemory:
    """Largest summed RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def _columns(n_features: int) -> list[str]:
    return [f"sensor_{j:02d}" for j in range(n_features)]


def make_data(directory: Path, n_rows: int, n_features: int, n_files: int, seed: int) -> None:
    """Write ``n_rows`` records as ``n_files`` Parquet files (1 row group per 250k rows)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
    directory.mkdir(parents=True)
    bounds = np.linspace(0, n_rows, n_files + 1).astype(np.int64)
    for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        values = rng.normal(size=(stop - start, n_features)) @ mixing
        frame = pd.DataFrame(values, columns=_columns(n_features))
        frame.insert(0, "record_id", np.arange(start, stop, dtype=np.int64))
        frame.to_parquet(directory / f"part.{i:05d}.parquet", index=False,
                         row_group_size=250_000)


def fit_model(path: Path, n_features: int, seed: int) -> None:
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from aepipe.estimators import Autoencoder

    rng = np.random.default_rng(seed + 1)
    mixing = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
    X = pd.DataFrame(rng.normal(size=(5_000, n_features)) @ mixing, columns=_columns(n_features))
    model = Pipeline([("detector", Autoencoder(max_epochs=3, random_state=seed))]).fit(X)
    joblib.dump(model, path)


# ---------------------------------------------------------------- modes (subprocesses)
def run_streaming(args) -> dict:
    import joblib
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aepipe.scoring import score_frame

    model = joblib.load(args.model)
    out_path = Path(args.out) / "streaming.parquet"
    n_rows = 0
    writer = None
    start = time.perf_counter()
    with PeakMemory() as memory:
        for file in sorted(Path(args.data).glob("*.parquet")):
            for batch in pq.ParquetFile(file).iter_batches(batch_size=args.chunk_rows):
                frame = batch.to_pandas()
                scores = score_frame(model, frame.drop(columns="record_id"), top_k=args.top_k)
                scores.insert(0, "record_id", frame["record_id"].to_numpy())
                table = pa.Table.from_pandas(scores, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(out_path, table.schema)
                writer.write_table(table)
                n_rows += len(scores)
        writer.close()
    return {"rows": n_rows, "wall_s": time.perf_counter() - start, "startup_s": 0.0,
            "peak_bytes": memory.peak}


def _warm_imports() -> None:
    import torch  # noqa: F401

    import aepipe.estimators  # noqa: F401
    import aepipe.scoring  # noqa: F401


def run_dask(args) -> dict:
    import joblib
    from distributed import Client, LocalCluster

    from aepipe.distributed import score_file_distributed

    model = joblib.load(args.model)
    with PeakMemory() as memory:
        start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, host="127.0.0.1") as cluster, \
                Client(cluster) as client:
            client.wait_for_workers(args.workers)
            # Imports on the workers count as start-up, as joblib.load's do for streaming.
            client.run(_warm_imports)
            startup = time.perf_counter() - start
            n_rows = score_file_distributed(
                model, args.data, Path(args.out) / "dask.parquet", scheduler=client,
                id_column="record_id", top_k=args.top_k,
            )
            scored = time.perf_counter()
    return {"rows": n_rows, "wall_s": scored - start - startup, "startup_s": startup,
            "peak_bytes": memory.peak}


# ---------------------------------------------------------------- driver
def _check_outputs(out: Path, n_rows: int) -> bool:
    """Both modes wrote the same records in the same order (ids and scores)."""
    import numpy as np
    import pyarrow.parquet as pq

    a = pq.read_table(out / "streaming.parquet", columns=["record_id", "anomaly_score"])
    b = pq.read_table(out / "dask.parquet", columns=["record_id", "anomaly_score"])
    if a.num_rows != n_rows or b.num_rows != n_rows:
        return False
    same_ids = np.array_equal(a["record_id"].to_numpy(), b["record_id"].to_numpy())
    close = np.allclose(a["anomaly_score"].to_numpy(), b["anomaly_score"].to_numpy(),
                        rtol=1e-5, atol=1e-6)
    return bool(same_ids and close)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--files", type=int, default=20,
                        help="input Parquet files (= Dask partitions)")
    parser.add_argument("--chunk-rows", type=int, default=250_000,
                        help="streaming batch size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=["streaming", "dask"],
                        choices=["streaming", "dask"])
    parser.add_argument("--workdir", default=None, help="parent of the temporary directory")
    parser.add_argument("--_mode", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._mode:  # a child process running one mode
        result = {"streaming": run_streaming, "dask": run_dask}[args._mode](args)
        print("RESULT " + json.dumps(result))
        return 0

    # `kill` should still remove the temporary data: turn SIGTERM into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="aepipe-dask-bench-", dir=args.workdir))
    try:
        data, out, model = tmp / "data", tmp / "out", tmp / "model.joblib"
        out.mkdir()
        t0 = time.perf_counter()
        make_data(data, args.rows, args.features, args.files, args.seed)
        fit_model(model, args.features, args.seed)
        size = sum(f.stat().st_size for f in data.iterdir())
        print(f"input: {args.rows:,} rows x {args.features} features, {args.files} Parquet "
              f"files, {size / 2**20:.0f} MiB (prepared in {time.perf_counter() - t0:.1f} s)",
              flush=True)
        results = {}
        for mode in args.modes:
            command = [sys.executable, os.path.abspath(__file__), "--_mode", mode,
                       "--model", str(model), "--data", str(data), "--out", str(out),
                       "--workers", str(args.workers), "--chunk-rows", str(args.chunk_rows),
                       "--top-k", str(args.top_k)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                print(f"{mode} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
                return 1
            results[mode] = json.loads(lines[-1][len("RESULT "):])
            print(f"{mode}: done in {results[mode]['wall_s']:.1f} s", flush=True)

        print()
        header = (f"{'mode':<40} {'rows':>12} {'wall s':>8} {'rows/s':>11} "
                  f"{'startup s':>10} {'peak RSS MiB':>13}")
        print(header)
        print("-" * len(header))
        labels = {"streaming": f"streaming, 1 process ({args.chunk_rows:,}/chunk)",
                  "dask": f"dask LocalCluster, {args.workers} workers x 1 thread"}
        for mode, r in results.items():
            print(f"{labels[mode]:<40} {r['rows']:>12,} {r['wall_s']:>8.1f} "
                  f"{r['rows'] / r['wall_s']:>11,.0f} {r['startup_s']:>10.1f} "
                  f"{r['peak_bytes'] / 2**20:>13,.0f}")
        if len(results) == 2:
            speedup = results["streaming"]["wall_s"] / results["dask"]["wall_s"]
            print(f"\ndask / streaming speed-up (excluding cluster start): {speedup:.2f}x; "
                  f"outputs identical in ids and order, scores within 1e-5: "
                  f"{_check_outputs(out, args.rows)}")
        print(f"cpu cores: {os.cpu_count()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
