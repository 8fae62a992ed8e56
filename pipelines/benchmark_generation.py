"""The VAE as a generator: how close are its records to the data it was fitted on?

For every ``.npz`` of ``../shared/data/adbench`` in the chosen half (21
numeric tables; ``y`` is dropped) and for a synthetic mixed-type table
(:func:`aepipe.make_mixed_table`: real, boolean and categorical columns), at
most ``--max-rows`` rows are split 70/30 into a training and a held-out
part. A :class:`aepipe.VariationalAutoencoder` (default settings) is fitted
on the training part and draws as many new records
(``vae.sample(n, random_state=seed)``). Against the training records:

- per real column, the two-sample Kolmogorov-Smirnov statistic (0: same
  distribution, 1: disjoint), averaged over columns;
- per boolean or categorical column, the total-variation distance of the
  value shares (0 to 1), averaged over columns;
- the mean absolute difference of the pairwise Pearson correlations of the
  real and boolean columns (off-diagonal entries).

Compared in the same run with an independent column bootstrap (each column
resampled on its own from the training part: its marginals are the
training data's, but it knows no correlation), and with the held-out part
of the real data (what a perfect generator would score: sampling noise).

Halves (``--half``): the folder's files sorted by name go to A, B, A, B, ...
(the first to A); the mixed table runs in both.

Examples
--------
    python pipelines/benchmark_generation.py --half A
    python pipelines/benchmark_generation.py --half B --seed 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "adbench"


def dataset_files(folder: Path, half: str) -> list[Path]:
    files = sorted(folder.glob("*.npz"), key=lambda p: p.name)
    return [p for k, p in enumerate(files) if half == "all" or "AB"[k % 2] == half]


def _is_real(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def distances(real: pd.DataFrame, generated: pd.DataFrame) -> dict:
    """Mean KS (real columns), mean TV (discrete columns), mean |corr difference|."""
    from scipy.stats import ks_2samp

    ks, tv = [], []
    for name in real.columns:
        if _is_real(real[name]):
            ks.append(ks_2samp(real[name].to_numpy(np.float64),
                               generated[name].to_numpy(np.float64)).statistic)
        else:
            a = real[name].astype(str).value_counts(normalize=True)
            b = generated[name].astype(str).value_counts(normalize=True)
            tv.append(0.5 * a.subtract(b, fill_value=0.0).abs().sum())
    numeric = [c for c in real.columns if pd.api.types.is_numeric_dtype(real[c])
               or pd.api.types.is_bool_dtype(real[c])]
    corr_gap = np.nan
    if len(numeric) > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.corrcoef(real[numeric].to_numpy(np.float64).T)
            b = np.corrcoef(generated[numeric].to_numpy(np.float64).T)
        off = ~np.eye(len(numeric), dtype=bool) & np.isfinite(a)
        b = np.where(np.isfinite(b), b, 0.0)  # a generated constant column: no correlation
        corr_gap = float(np.abs(a - b)[off].mean()) if off.any() else np.nan
    return {"ks": float(np.mean(ks)) if ks else np.nan,
            "tv": float(np.mean(tv)) if tv else np.nan, "corr": corr_gap}


def bootstrap(frame: pd.DataFrame, n: int, rng) -> pd.DataFrame:
    return pd.DataFrame({name: frame[name].to_numpy()[rng.integers(0, len(frame), n)]
                         for name in frame.columns})


def tables(args):
    rng = np.random.default_rng(args.seed)
    for path in dataset_files(Path(args.data_dir), args.half):
        X = np.load(path)["X"].astype(np.float64)
        if len(X) > args.max_rows:
            X = X[np.sort(rng.choice(len(X), args.max_rows, replace=False))]
        yield path.stem, pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    from aepipe import make_mixed_table

    yield "mixed (synthetic)", make_mixed_table(
        min(args.max_rows, 3000), contamination=0.0, random_state=args.seed).X


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=["A", "B", "all"], default="A")
    parser.add_argument("--data-dir", default=str(DATA))
    parser.add_argument("--max-rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from aepipe import VariationalAutoencoder

    torch.set_num_threads(1)
    rows = []
    for name, frame in tables(args):
        rng = np.random.default_rng(args.seed)
        order = rng.permutation(len(frame))
        cut = int(0.7 * len(frame))
        train = frame.iloc[order[:cut]].reset_index(drop=True)
        held_out = frame.iloc[order[cut:]].reset_index(drop=True)
        started = time.perf_counter()
        vae = VariationalAutoencoder(random_state=args.seed).fit(train)
        fit_s = time.perf_counter() - started
        generated = {
            "VAE sample": vae.sample(len(train), random_state=args.seed),
            "column bootstrap": bootstrap(train, len(train), rng),
            "held-out real data": held_out,
        }
        for source, records in generated.items():
            rows.append({"dataset": name, "source": source, **distances(train, records),
                         "fit_s": fit_s if source == "VAE sample" else 0.0})
        shown = "  ".join(f"{r['source']}: KS {r['ks']:.3f} TV {r['tv']:.3f} "
                          f"|dcorr| {r['corr']:.3f}" for r in rows[-3:])
        print(f"{name:20s} {shown}", flush=True)
    frame = pd.DataFrame(rows)
    print(f"\nHalf {args.half}: mean over {frame['dataset'].nunique()} tables (seed {args.seed});"
          " distances to the training records, lower is closer\n")
    print("| records | mean KS (real columns) | mean TV (discrete columns) | "
          "mean abs. correlation difference |")
    print("|---|---|---|---|")
    for source, part in frame.groupby("source", sort=False):
        print(f"| {source} | {part['ks'].mean():.3f} | {part['tv'].mean():.3f} | "
              f"{part['corr'].mean():.3f} |")
    print(f"\nVAE fit time: {frame['fit_s'].sum():.1f} s in total")


if __name__ == "__main__":
    main()
