"""Retrieval by code distance: quality on image embeddings, speed at 100k and 1M records.

Part 1, quality (``--part quality``). For every ``.npz`` of
``../shared/data/adbench_cv`` (ResNet18 embeddings of images, 512 columns;
``y`` 1 = anomaly) in the chosen half: a stratified 70/30 split into a
library and queries; each representation indexes the library and answers
the 10 nearest library records of every query. precision@10 = the share of
those 10 with the query's label (y). Representations:

- ``raw``: the 512 columns as they are;
- ``pca``: :class:`aepipe.PCADetector` codes of the autoencoder's width;
- ``ae``: :class:`aepipe.Autoencoder` codes (default settings: one hidden
  layer, 32-value codes for 512 columns), fitted on the unlabelled library.

Reported per half: mean precision@10 over all queries, over the anomaly
(minority) queries, over the normal ones, and the chance level (the share
of the query's class in the library). Exact search throughout, so the
figures compare the codes, not the search.

Part 2, speed (``--part speed``): synthetic codes of the autoencoder's width
(32), drawn from a mixture of 1,000 anisotropic Gaussian clusters, 100,000
and 1,000,000 indexed; 1,000 queries from the same mixture; one thread.
Build time, queries per second (all queries in one call, and one query per
call), and recall@10 of HNSW against exact search.

Halves (``--half``): the folder's files sorted by name go to A, B, A, B, ...
(the first to A); design on A, confirm on B.

Examples
--------
    python pipelines/benchmark_retrieval.py --part quality --half A
    python pipelines/benchmark_retrieval.py --part speed --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "adbench_cv"
CODE_WIDTH = 32  # Autoencoder's latent_dim="auto" for 512 columns: clip(512 // 2, 1, 32)


def dataset_files(folder: Path, half: str) -> list[Path]:
    files = sorted(folder.glob("*.npz"), key=lambda p: p.name)
    return [p for k, p in enumerate(files) if half == "all" or "AB"[k % 2] == half]


def _precision_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    return (neighbour_labels == query_labels[:, None]).mean(axis=1)


def quality(args) -> None:
    import torch
    from sklearn.model_selection import train_test_split

    from aepipe import Autoencoder, PCADetector
    from aepipe.retrieval import CodeIndex

    torch.set_num_threads(1)
    rows = []
    for path in dataset_files(Path(args.data_dir), args.half):
        data = np.load(path)
        X, y = data["X"].astype(np.float64), data["y"].astype(int)
        library, queries, y_library, y_queries = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=args.seed)
        started = time.perf_counter()
        ae = Autoencoder(random_state=args.seed).fit(library)
        fit_s = time.perf_counter() - started
        encoders = {
            "raw": None,
            "pca": PCADetector(n_components=ae.latent_dim_, random_state=args.seed).fit(library),
            "ae": ae,
        }
        chance = np.where(y_queries == 1, y_library.mean(), 1 - y_library.mean())
        for name, encoder in encoders.items():
            index = CodeIndex(encoder, method="exact", metric=args.metric).fit(
                library, ids=y_library)
            labels = index.kneighbors(queries, n_neighbors=args.k, return_distance=False)
            precision = _precision_at_k(labels, y_queries)
            rows.append({
                "dataset": path.stem, "codes": name, "width": index.codes_.shape[1],
                "p_all": precision.mean(), "p_anomaly": precision[y_queries == 1].mean(),
                "p_normal": precision[y_queries == 0].mean(),
                "chance_anomaly": chance[y_queries == 1].mean(),
                "fit_s": fit_s if name == "ae" else 0.0,
            })
            r = rows[-1]
            print(f"{path.stem:24s} {name:4s} width {r['width']:3d}  P@{args.k} all "
                  f"{r['p_all']:.3f}  anomaly {r['p_anomaly']:.3f}  normal {r['p_normal']:.3f}"
                  f"  (chance for anomalies {r['chance_anomaly']:.3f})", flush=True)
    _quality_table(rows, args)


def _quality_table(rows, args) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)
    print(f"\nHalf {args.half}: mean over {frame['dataset'].nunique()} datasets, precision@"
          f"{args.k} by label (y), metric {args.metric}, seed {args.seed}\n")
    table = frame.groupby("codes", sort=False)[["width", "p_all", "p_anomaly", "p_normal",
                                                "chance_anomaly"]].mean()
    wins = frame.pivot(index="dataset", columns="codes", values="p_anomaly")
    table["best on (anomaly queries)"] = [
        int((wins[c] >= wins.drop(columns=c).max(axis=1)).sum()) for c in table.index]
    print("| codes | width | P@10 all | P@10 anomaly queries | P@10 normal queries | "
          "chance (anomaly) | datasets best (anomaly; ties count for each) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in table.iterrows():
        print(f"| {name} | {r['width']:.0f} | {r['p_all']:.3f} | {r['p_anomaly']:.3f} | "
              f"{r['p_normal']:.3f} | {r['chance_anomaly']:.3f} | "
              f"{r['best on (anomaly queries)']:.0f} |")
    print(f"\nAutoencoder fit time: {frame.loc[frame['codes'] == 'ae', 'fit_s'].sum():.1f} s "
          "in total")


def _mixture(n: int, rng, centres, spreads) -> np.ndarray:
    labels = rng.integers(0, len(centres), n)
    out = np.empty((n, centres.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):  # bounded memory for 1M x 32
        part = labels[start:start + 100_000]
        out[start:start + len(part)] = centres[part] + rng.normal(
            size=(len(part), centres.shape[1])) * spreads[part]
    return out


def speed(args) -> None:
    import faiss

    from aepipe.retrieval import CodeIndex

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(scale=3.0, size=(1000, CODE_WIDTH))
    spreads = rng.uniform(0.2, 1.0, size=(1000, CODE_WIDTH))
    queries = _mixture(args.n_queries, rng, centres, spreads)
    print(f"{CODE_WIDTH}-value codes, {args.n_queries} queries, k={args.k}, one thread, "
          f"HNSW ef_construction={args.ef_construction}\n")
    print("| indexed | search | build (s) | queries/s (batch) | queries/s (one per call) | "
          "recall@10 |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        codes = _mixture(n, rng, centres, spreads)
        truth = None
        for method in ("exact", "hnsw"):
            started = time.perf_counter()
            index = CodeIndex(method=method, n_jobs=1,
                              ef_construction=args.ef_construction).fit(codes)
            build = time.perf_counter() - started
            for ef in (args.ef_search if method == "hnsw" else [None]):
                if ef is not None:
                    index.set_params(ef_search=ef)
                started = time.perf_counter()
                found = index.kneighbors(queries, n_neighbors=args.k, return_distance=False)
                batch_qps = len(queries) / (time.perf_counter() - started)
                single = queries[:args.single_queries]
                started = time.perf_counter()
                for q in single:
                    index.kneighbors(q[None], n_neighbors=args.k)
                single_qps = len(single) / (time.perf_counter() - started)
                if truth is None:
                    truth = found
                recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, truth)])
                label = method if ef is None else f"hnsw, ef_search={ef}"
                print(f"| {n:,} | {label} | {build:.1f} | {batch_qps:,.0f} | {single_qps:,.0f} "
                      f"| {recall:.3f} |", flush=True)
            del index


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["quality", "speed", "all"], default="all")
    parser.add_argument("--half", choices=["A", "B", "all"], default="A")
    parser.add_argument("--data-dir", default=str(DATA))
    parser.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--n-queries", type=int, default=1000)
    parser.add_argument("--single-queries", type=int, default=200)
    parser.add_argument("--ef-construction", type=int, default=100,
                        help="HNSW build depth (CodeIndex's default: 100).")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256],
                        help="HNSW search depths to measure on the same graph.")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.part in ("quality", "all"):
        if not Path(args.data_dir).is_dir():
            sys.exit(f"No data folder {args.data_dir}; pass --data-dir.")
        quality(args)
    if args.part in ("speed", "all"):
        speed(args)


if __name__ == "__main__":
    main()
