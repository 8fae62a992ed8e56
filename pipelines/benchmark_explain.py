"""Explanation benchmark: does the top column of a record name the column that is wrong?

Protocol, per table (``--half`` of the ADBench folders, as in
``benchmark_adbench.py``, plus aepipe's mixed demo table):

- One pure-noise numeric column (``noise``, standard normal, independent of
  everything) is appended to every table: a column with no signal, whose
  share of the top spot on normal records must stay near 1/d. The demo table
  also has its own free category, ``channel``. These are the *signal-free*
  columns; they are never corrupted.
- A stratified 70/30 split (the ADBench protocol; tables over
  ``--max-train`` training rows are subsampled); the detectors and the
  baselines are fitted on the training part (anomalies included, as in
  ADBench). The demo table is drawn with ``random_state=0`` for half A and
  ``1`` for half B (5 % anomalies).
- ``--records`` held-out *normal* records are drawn from the test part. Each
  is corrupted once per corruption kind, in exactly one column (a column
  pair for ``swap``), and the corrupted column is recorded:

  - ``shift``: ``+/- k`` robust standard deviations (``--shift-k``, 4);
  - ``scale``: the value multiplied by ``--scale-k`` (4), as when a unit is
    mixed up;
  - ``copy``: the value of a random training record in that column;
  - ``flip``: a boolean, a two-valued or a categorical column set to another
    level seen in training;
  - ``swap``: the robust z-values of two correlated numeric columns
    (|Spearman rho| >= 0.5 on the training part) exchanged; a hit is either
    column.

  A numeric corruption must move the value by at least one robust standard
  deviation (else another column of the record is drawn): a change smaller
  than the column's own spread is no anomaly. Columns of the table only
  (not the signal-free ones) are corrupted.
- Every explanation method ranks the columns of every record; **hit@1** and
  **hit@3**: the corrupted column is the first / among the first three.
  On uncorrupted held-out normal records (``--normal-records``, 1,000), **top
  share**: for each column, the share of records whose top column it is; the
  table reports the largest share of a signal-free column and the largest
  share of any column, against ``2/d``, and whether the excess over ``2/d``
  is more than chance (one-sided binomial test, p < 0.05: with 513 columns,
  2/d of 1,000 records is 4 records).

Explanation methods, per detector (``--detectors``: aepipe's default
``AutoencoderEnsemble``, ``Autoencoder``, ``PCADetector``):

- ``aepipe``: the detector's ``feature_scores`` (what ``explain``,
  ``score_frame``, the CLI, the REST endpoint and the plots report);
- ``nll``: the raw per-column negative log-likelihood (``feature_nll``; what
  ``feature_scores`` returned before issue #16);
- ``centered``, ``zscored`` (``--methods``; ablations): the raw NLL minus its
  training median, and that divided by its training interquartile range.

Baselines, in the same run: ``zscore``, each column's robust z-score against
the training part (median and MAD; a category's or boolean's level scores the
normal quantile of its training frequency, ``Phi^-1(1 - p/2)``), and
``shap_iforest``, the SHAP values of a scikit-learn ``IsolationForest`` (the
``shap`` package's ``TreeExplainer``; a column's anomaly contribution is
minus its SHAP value, summed over a category's one-hot group).

Tables are averaged per dataset first (each dataset counts once), then over
the datasets of the half.

Usage::

    python pipelines/benchmark_explain.py --half A
    python pipelines/benchmark_explain.py --half B --out /tmp/explain_B.csv
    python pipelines/benchmark_explain.py --half A --datasets demo 12_fault --records 100
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KINDS = ("shift", "scale", "copy", "flip", "swap")
NOISE = "noise"
MIN_CHANGE = 1.0  # robust standard deviations a numeric corruption must move the value


def _adbench_module():
    """``pipelines/benchmark_adbench.py``, for its halves rule and its split."""
    spec = importlib.util.spec_from_file_location(
        "benchmark_adbench", Path(__file__).with_name("benchmark_adbench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------- tables
class Table:
    """A table for the benchmark: train/test frames, its column kinds and signal-free columns."""

    def __init__(self, name, train, test_normal, signal_free):
        self.name = name
        self.train = train
        self.test_normal = test_normal
        self.signal_free = list(signal_free)
        self.columns = list(train.columns)
        self.kind = {c: _column_kind(train[c]) for c in self.columns}
        numeric = [c for c in self.columns if self.kind[c] == "numeric"]
        values = train[numeric].to_numpy(dtype=np.float64)
        self.median = dict(zip(numeric, np.median(values, axis=0)))
        self.sigma = dict(zip(numeric, _robust_sigma(values)))


def _column_kind(series: pd.Series) -> str:
    if isinstance(series.dtype, pd.CategoricalDtype) or series.dtype == object:
        return "categorical"
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    return "binary" if series.nunique() <= 2 else "numeric"


def _robust_sigma(values: np.ndarray) -> np.ndarray:
    """MAD * 1.4826, else IQR / 1.349, else the standard deviation, else 1."""
    center = np.median(values, axis=0)
    mad = 1.4826 * np.median(np.abs(values - center), axis=0)
    q1, q3 = np.percentile(values, [25, 75], axis=0)
    iqr = (q3 - q1) / 1.349
    std = values.std(axis=0)
    sigma = np.where(mad > 1e-12, mad, np.where(iqr > 1e-12, iqr, std))
    return np.where(sigma > 1e-12, sigma, 1.0)


def _with_noise(frame: pd.DataFrame, rng) -> pd.DataFrame:
    return frame.assign(**{NOISE: rng.normal(size=len(frame))})


def adbench_table(path, seed, max_train, split):
    data = np.load(path)
    X, y = data["X"].astype(np.float64), data["y"].astype(int)
    X_train, X_test, _, y_test = split(X, y, seed)
    rng = np.random.default_rng(seed)
    if len(X_train) > max_train:
        X_train = X_train[rng.choice(len(X_train), max_train, replace=False)]
    names = [f"x{j}" for j in range(X.shape[1])]
    train = _with_noise(pd.DataFrame(X_train, columns=names), rng)
    test = _with_noise(pd.DataFrame(X_test[y_test == 0], columns=names), rng)
    return Table(path.stem, train, test, [NOISE])


def demo_table(seed, n_samples=3000):
    from sklearn.model_selection import train_test_split

    from aepipe.datasets import make_mixed_table

    data = make_mixed_table(n_samples, contamination=0.05, random_state=seed)
    rng = np.random.default_rng(seed)
    X = _with_noise(data.X, rng)
    train, test, _, y_test = train_test_split(X, data.y, test_size=0.3, stratify=data.y,
                                              random_state=seed)
    return Table("demo", train.reset_index(drop=True),
                 test[y_test.to_numpy() == 0].reset_index(drop=True), ["channel", NOISE])


# --------------------------------------------------------------- corruptions
def _levels(table, column):
    series = table.train[column]
    return list(pd.unique(series.dropna()))


def _set(frame, row, column, value):
    series = frame[column]
    if isinstance(series.dtype, pd.CategoricalDtype):
        frame.loc[row, column] = value
    else:
        frame.loc[row, column] = np.asarray(value, dtype=series.dtype).item()


def corrupt(table: Table, records: pd.DataFrame, kind: str, rng, args):
    """``(corrupted records, truth)``: each record changed in one column (a pair for swap).

    ``truth[i]`` is the set of corrupted column positions of record ``i``;
    records for which no column qualifies are left out.
    """
    position = {c: j for j, c in enumerate(table.columns)}
    eligible = [c for c in table.columns if c not in table.signal_free]
    numeric = [c for c in eligible if table.kind[c] == "numeric"]
    discrete = [c for c in eligible if table.kind[c] != "numeric"]
    pairs = _correlated_pairs(table, numeric) if kind == "swap" else []
    out, truth, keep = records.copy(), [], []
    for i in range(len(records)):
        row = out.index[i]
        done = None
        for _ in range(20):  # draw columns until one qualifies
            if kind in ("shift", "scale", "copy") and numeric:
                column = numeric[rng.integers(len(numeric))]
                old, sigma = float(out.at[row, column]), table.sigma[column]
                if kind == "shift":
                    new = old + rng.choice([-1.0, 1.0]) * args.shift_k * sigma
                elif kind == "scale":
                    new = old * args.scale_k
                else:
                    new = float(table.train[column].iloc[rng.integers(len(table.train))])
                if abs(new - old) >= MIN_CHANGE * sigma:
                    _set(out, row, column, new)
                    done = {position[column]}
            elif kind == "copy" and discrete or kind == "flip" and discrete:
                column = discrete[rng.integers(len(discrete))]
                old = out.at[row, column]
                if kind == "copy":
                    new = table.train[column].iloc[rng.integers(len(table.train))]
                else:
                    others = [v for v in _levels(table, column) if v != old]
                    new = others[rng.integers(len(others))] if others else old
                if new != old:
                    _set(out, row, column, new)
                    done = {position[column]}
            elif kind == "swap" and pairs:
                a, b = pairs[rng.integers(len(pairs))]
                za = (float(out.at[row, a]) - table.median[a]) / table.sigma[a]
                zb = (float(out.at[row, b]) - table.median[b]) / table.sigma[b]
                if abs(za - zb) >= MIN_CHANGE:
                    _set(out, row, a, table.median[a] + zb * table.sigma[a])
                    _set(out, row, b, table.median[b] + za * table.sigma[b])
                    done = {position[a], position[b]}
            if done is not None:
                break
        if done is not None:
            truth.append(done)
            keep.append(i)
    return out.iloc[keep], truth


def _correlated_pairs(table, numeric, threshold=0.5, limit=200):
    if len(numeric) < 2:
        return []
    rho = table.train[numeric].rank().corr().to_numpy()
    upper = np.argwhere(np.triu(np.abs(rho) >= threshold, k=1))
    pairs = [(numeric[a], numeric[b]) for a, b in upper]
    return pairs[:limit] if len(pairs) <= limit else [
        pairs[k] for k in np.linspace(0, len(pairs) - 1, limit).astype(int)]


# --------------------------------------------------------------- explanations
def _detectors(names, seed, args):
    from aepipe import Autoencoder, PCADetector, make_default_detector

    makers = {
        "default": lambda: make_default_detector(random_state=seed),
        "ae": lambda: Autoencoder(max_epochs=args.ae_epochs, random_state=seed),
        "pca": lambda: PCADetector(random_state=seed),
    }
    return {name: makers[name]() for name in names}


def _raw_nll(detector, X):
    """The per-column NLL (``feature_nll`` where the detector has it)."""
    method = getattr(detector, "feature_nll", None)
    frame = method(X) if method is not None else detector.feature_scores(X)
    return frame.to_numpy(dtype=np.float64)


def detector_explainers(detector, train):
    """Explanation methods of a fitted detector: name -> (records -> (n, d) scores).

    ``centered`` and ``zscored`` are the simpler calibrations tried while
    designing aepipe's (not run by default): each column's NLL minus its
    training median, and that divided by the training interquartile range.
    """
    base = _raw_nll(detector, train)
    median = np.median(base, axis=0)
    q1, q3 = np.percentile(base, [25, 75], axis=0)
    spread = np.maximum(q3 - q1, 1e-6 * np.maximum(np.abs(median), 1.0))
    return {
        "aepipe": lambda X: detector.feature_scores(X).to_numpy(dtype=np.float64),
        "nll": lambda X: _raw_nll(detector, X),
        "centered": lambda X: _raw_nll(detector, X) - median,
        "zscored": lambda X: (_raw_nll(detector, X) - median) / spread,
    }


class ZScore:
    """Per-column robust z-score; a discrete level scores the normal quantile of its rarity."""

    def __init__(self, table: Table):
        from scipy.stats import norm

        self.table = table
        self.rarity = {}
        for column in table.columns:
            if table.kind[column] != "numeric":
                freq = table.train[column].astype(object).value_counts(normalize=True)
                self.rarity[column] = {level: float(norm.isf(p / 2)) for level, p in freq.items()}

    def __call__(self, X):
        out = np.empty((len(X), len(self.table.columns)))
        for j, column in enumerate(self.table.columns):
            if column in self.rarity:
                unseen = float(max(self.rarity[column].values(), default=0.0)) + 1.0
                out[:, j] = [self.rarity[column].get(v, unseen) for v in X[column].astype(object)]
            else:
                values = X[column].to_numpy(dtype=np.float64)
                out[:, j] = np.abs(values - self.table.median[column]) / self.table.sigma[column]
        return out


class ShapIsolationForest:
    """Minus the SHAP values of an IsolationForest (TreeExplainer), one-hot groups summed."""

    def __init__(self, table: Table, seed: int):
        import shap
        from sklearn.ensemble import IsolationForest

        self.table = table
        self.groups = {}
        encoded = self._encode(table.train, fit=True)
        self.forest = IsolationForest(random_state=seed).fit(encoded)
        self.explainer = shap.TreeExplainer(self.forest)

    def _encode(self, X, fit=False):
        parts, position = [], 0
        for column in self.table.columns:
            kind = self.table.kind[column]
            if kind == "categorical":
                levels = _levels(self.table, column)
                values = X[column].astype(object).to_numpy()
                block = np.stack([values == level for level in levels], axis=1).astype(float)
            else:
                block = X[column].to_numpy(dtype=np.float64)[:, None]
            if fit:
                self.groups[column] = list(range(position, position + block.shape[1]))
            position += block.shape[1]
            parts.append(block)
        return np.concatenate(parts, axis=1)

    def __call__(self, X):
        values = -np.asarray(self.explainer.shap_values(self._encode(X)), dtype=np.float64)
        return np.stack([values[:, self.groups[c]].sum(axis=1) for c in self.table.columns],
                        axis=1)


# --------------------------------------------------------------- measurement
def _ranks(scores: np.ndarray) -> np.ndarray:
    """Column positions by decreasing score (ties: column order)."""
    return np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=1, kind="stable")


def evaluate_table(table: Table, args, seed) -> list[dict]:
    rng = np.random.default_rng(seed + 1000)
    n = min(args.records, len(table.test_normal))
    records = table.test_normal.iloc[rng.choice(len(table.test_normal), n, replace=False)]
    n_normal = min(args.normal_records, len(table.test_normal))
    normal = table.test_normal.iloc[np.sort(rng.choice(len(table.test_normal), n_normal,
                                                       replace=False))]
    corrupted = {kind: corrupt(table, records, kind, rng, args) for kind in args.kinds}
    explainers = {}
    fit_seconds = {}
    for name, detector in _detectors(args.detectors, seed, args).items():
        start = time.perf_counter()
        detector.fit(table.train)
        fit_seconds[name] = time.perf_counter() - start
        for method, explain in detector_explainers(detector, table.train).items():
            if method in args.methods:
                explainers[(name, method)] = explain
    if "zscore" in args.baselines:
        explainers[("baseline", "zscore")] = ZScore(table)
    if "shap_iforest" in args.baselines:
        explainers[("baseline", "shap_iforest")] = ShapIsolationForest(table, seed)
    d = len(table.columns)
    free = [table.columns.index(c) for c in table.signal_free]
    rows = []
    for (detector, method), explain in explainers.items():
        start = time.perf_counter()
        top = _ranks(explain(normal))[:, 0]
        counts = np.bincount(top, minlength=d)
        share = counts / len(top)
        row = dict(dataset=table.name, seed=seed, d=d, detector=detector, method=method,
                   fit_s=fit_seconds.get(detector, np.nan),
                   free_share=float(share[free].max()), max_share=float(share.max()),
                   max_share_column=table.columns[int(share.argmax())], n_normal=len(top),
                   free_significant=_significantly_above(int(counts[free].max()), len(top),
                                                         2.0 / d))
        for kind, (X_bad, truth) in corrupted.items():
            if not truth:
                continue
            ranks = _ranks(explain(X_bad))
            row[f"hit1_{kind}"] = float(np.mean([r[0] in t for r, t in zip(ranks, truth)]))
            row[f"hit3_{kind}"] = float(np.mean([bool(set(r[:3]) & t)
                                                 for r, t in zip(ranks, truth)]))
            row[f"n_{kind}"] = len(truth)
        row["explain_s"] = time.perf_counter() - start
        rows.append(row)
    return rows


def _significantly_above(count: int, n: int, share: float) -> bool:
    """Whether ``count`` of ``n`` is above ``share`` by more than chance (binomial, p < 0.05)."""
    from scipy.stats import binomtest

    return count > share * n and binomtest(count, n, share, alternative="greater").pvalue < 0.05


# --------------------------------------------------------------- report
def _overall(frame, kinds, at):
    """Per row: hit@k over all corrupted records of the table (kinds weighted by count)."""
    hits = sum(frame[f"hit{at}_{k}"].fillna(0) * frame[f"n_{k}"].fillna(0) for k in kinds)
    counts = sum(frame[f"n_{k}"].fillna(0) for k in kinds)
    return hits / counts.where(counts > 0)


def report(frame: pd.DataFrame, kinds) -> None:
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.max_rows", 400)
    kinds = [k for k in kinds if f"hit1_{k}" in frame]
    frame = frame.assign(hit1_all=_overall(frame, kinds, 1), hit3_all=_overall(frame, kinds, 3),
                         two_over_d=2.0 / frame["d"])
    keys = ["detector", "method"]
    per_dataset = frame.groupby(["dataset", *keys]).mean(numeric_only=True)
    print("\nhit@1 per dataset (all corruption kinds pooled)")
    print(per_dataset["hit1_all"].unstack(keys).round(2).to_string())
    columns = ["hit1_all", "hit3_all", *[f"hit1_{k}" for k in kinds],
               *[f"hit3_{k}" for k in kinds]]
    summary = per_dataset.groupby(level=keys)[columns].mean()
    print(f"\nMean over {frame.dataset.nunique()} datasets: hit@1 / hit@3 of the corrupted "
          "column (all = every corrupted record of a table)")
    print(summary.round(3).to_string())
    shares = per_dataset.groupby(level=keys)[["free_share", "max_share", "two_over_d"]]
    over = per_dataset.assign(
        free_over=per_dataset["free_share"] > per_dataset["two_over_d"],
        free_significant=per_dataset["free_significant"] > 0,
        any_over=per_dataset["max_share"] > per_dataset["two_over_d"])
    table = shares.mean().join(over.groupby(level=keys)[
        ["free_over", "free_significant", "any_over"]].sum())
    table = table.rename(columns={
        "free_share": "mean max share signal-free", "max_share": "mean max share any",
        "two_over_d": "mean 2/d", "free_over": "tables signal-free > 2/d",
        "free_significant": "... significantly", "any_over": "tables any > 2/d"})
    print(f"\nNormal records (up to {int(frame['n_normal'].max())} per table): share whose top "
          "column is a signal-free column (max over them), and the largest share of any "
          "column, mean over datasets; counts of tables over 2/d (significantly: binomial "
          "test, p < 0.05)")
    print(table.round(3).to_string())
    print("\nTop-column share of the signal-free columns per dataset (2/d in the last column)")
    free = per_dataset["free_share"].unstack(keys)
    free[("", "2/d")] = per_dataset["two_over_d"].groupby(level="dataset").first()
    print(free.round(3).to_string())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", nargs="+",
                        default=[str(REPO.parent / "shared" / "data" / d)
                                 for d in ("adbench", "adbench_cv")])
    parser.add_argument("--half", choices=["A", "B", "all"], default="A")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="dataset names (file stems, or 'demo') to run; default: the half")
    parser.add_argument("--max-datasets", type=int, default=None,
                        help="run only the first N datasets of each folder of the half")
    parser.add_argument("--no-demo", action="store_true", help="leave out the demo table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", type=int, default=100,
                        help="held-out normal records per table (each corrupted once per kind)")
    parser.add_argument("--normal-records", type=int, default=1000,
                        help="held-out normal records per table for the top-column shares")
    parser.add_argument("--max-train", type=int, default=2000,
                        help="training rows per table (a random subsample above this)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--shift-k", type=float, default=4.0)
    parser.add_argument("--scale-k", type=float, default=4.0)
    parser.add_argument("--detectors", nargs="+", default=["default", "ae", "pca"],
                        choices=["default", "ae", "pca"])
    parser.add_argument("--methods", nargs="+", default=["aepipe", "nll"],
                        choices=["aepipe", "nll", "centered", "zscored"])
    parser.add_argument("--baselines", nargs="+", default=["zscore", "shap_iforest"],
                        choices=["zscore", "shap_iforest"])
    parser.add_argument("--ae-epochs", type=int, default=30,
                        help="max_epochs of the Autoencoder (early stopping on)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the per-table rows to this CSV")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    adbench = _adbench_module()
    files = adbench.dataset_files(args.data_dir, args.half)
    if args.max_datasets is not None:
        by_folder: dict = {}
        for folder, path in files:
            by_folder.setdefault(folder, []).append(path)
        files = [(f, p) for f, paths in by_folder.items() for p in paths[:args.max_datasets]]
    if args.datasets:
        files = [(f, p) for f, p in files if p.stem in set(args.datasets)]
    with_demo = not args.no_demo and (not args.datasets or "demo" in args.datasets)
    if not files and not with_demo:
        print(f"No ADBench data in {args.data_dir}; nothing to run.")
        return 0
    started = time.perf_counter()
    rows = []
    tables = [("demo", None)] if with_demo else []
    tables += [(path.stem, path) for _, path in files]
    for name, path in tables:
        start = time.perf_counter()
        if path is None:
            table = demo_table({"A": 0, "B": 1}.get(args.half, 2) + args.seed)
        else:
            table = adbench_table(path, args.seed, args.max_train, adbench.split)
        found = evaluate_table(table, args, args.seed)
        rows += found
        best = max(found, key=lambda r: _row_hit1(r, args.kinds))
        print(f"{name:>24} d={table.train.shape[1]:>4} n_train={len(table.train):>5} "
              f"{time.perf_counter() - start:6.1f}s  best hit@1 {best['detector']}/"
              f"{best['method']} {_row_hit1(best, args.kinds):.2f}", flush=True)
    frame = pd.DataFrame(rows)
    if args.out:
        frame.to_csv(args.out, index=False, mode="a", header=not os.path.exists(args.out))
    print(f"\nHalf {args.half}, seed {args.seed}: {len(tables)} tables, "
          f"{time.perf_counter() - started:.0f} s.")
    report(frame, args.kinds)
    return 0


def _row_hit1(row, kinds):
    n = sum(row.get(f"n_{k}", 0) for k in kinds)
    return sum(row.get(f"hit1_{k}", 0) * row.get(f"n_{k}", 0) for k in kinds) / max(n, 1)


if __name__ == "__main__":
    sys.exit(main())
