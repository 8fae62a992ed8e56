"""ADBench benchmark: aepipe's default against the peer panel, on two halves of the data.

Protocol (``../shared/data/README.md``, Han et al., NeurIPS 2022): for every
``.npz`` (arrays ``X``, ``y`` with 1 = anomaly) in the ``--data-dir`` folders
(default: ``../shared/data/adbench``, 21 classical tables, and
``../shared/data/adbench_cv``, 21 tables of 512-value image embeddings),
datasets over 30,000 rows are subsampled (stratified) to 30,000; a
stratified 70/30 split; each detector is fitted on the unlabelled train part
(anomalies included) and scored on the test part; ROC-AUC and average
precision; one row per (dataset, detector, seed).

Halves (``--half``), fixed before any result was seen: in each folder the
files are sorted by name and assigned alternately to A and B, the first to
A. Design choices are made on half A; half B confirms them.

The peer panel runs at its libraries' defaults: scikit-learn's
IsolationForest (``iforest``) and PyOD's KNN, LOF, ECOD, PCA, AutoEncoder,
VAE and DIF (``pyod_*``, seeded where the class takes ``random_state``).
Mean rank is computed per dataset over every detector in the table.

Column types the development tables lack (``--append``): they have almost
no two-valued columns (two in ``12_fault``) and few mostly-zero ones, while
tables in the wild are full of one-hot levels, yes/no answers, indicator
flags and amounts that are usually 0. ``--append`` adds ``max(8, d)``
columns to every table: ``flags``, each set independently of everything
with a probability drawn log-uniformly from 0.2 % to 20 %; ``indicators``,
each marking a rare value of a random column (above a training quantile
drawn from 0.8 to 0.995), so they carry the column's signal in coarse
form; ``zero-inflated``, 0 except with such a probability, then a
log-normal amount. The columns are drawn per seed after the split, the
same for every detector, and the results are stored under the dataset's
name plus ``+flags``, ``+indicators`` or ``+zero-inflated``.

Runs are resumable and mergeable: with ``--out results.csv`` every finished
(dataset, detector, seed) is appended at once, and rows already in the file
are skipped, so detectors can be run separately (``--detectors iforest``) into
the same file, and an interrupted run continues where it stopped. The tables
are printed from everything in the file for the selected detectors and half.

Examples
--------
    python pipelines/benchmark_adbench.py --half A --seeds 0 1 2 --out /tmp/adbench.csv
    python pipelines/benchmark_adbench.py --detectors default iforest --datasets 14_glass
    python pipelines/benchmark_adbench.py --half A --seeds 0 --append flags \
        --data-dir ../shared/data/adbench --out /tmp/adbench_flags.csv
    python pipelines/benchmark_adbench.py --half all --report-only --out /tmp/adbench.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DEFAULT_DATA = [SHARED / "adbench", SHARED / "adbench_cv"]
MAX_ROWS = 30_000
APPEND_KINDS = ("flags", "indicators", "zero-inflated")
FIELDS = ["dataset", "detector", "seed", "auroc", "ap", "fit_s", "score_s"]


# --------------------------------------------------------------- detectors
# Each factory takes a seed and returns (fit(X) -> None, anomaly_score(X) -> higher = anomalous).
def _aepipe(make):
    def factory(seed):
        model = make(seed)
        return (lambda X: model.fit(X)), (lambda X: -model.score_samples(X))
    return factory


def _default(seed):
    from aepipe import make_default_detector

    return make_default_detector(random_state=seed)


def _variant(name):
    def make(seed):
        import aepipe

        return getattr(aepipe, name)(random_state=seed)
    return make


def _pca(seed):
    from aepipe import PCADetector

    return PCADetector(random_state=seed)


def _iforest(seed):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(random_state=seed)


def _pyod(module, name):
    """A PyOD detector at its defaults (seeded when it takes ``random_state``)."""
    def factory(seed):
        import importlib
        import inspect

        Model = getattr(importlib.import_module(f"pyod.models.{module}"), name)
        params = inspect.signature(Model).parameters
        kwargs = {key: value for key, value in (("random_state", seed), ("verbose", 0))
                  if key in params}
        model = Model(**kwargs)
        return (lambda X: model.fit(X)), (lambda X: model.decision_function(X))
    return factory


DETECTORS = {
    "default": _aepipe(_default),
    "ae": _aepipe(_variant("Autoencoder")),
    "dae": _aepipe(_variant("DenoisingAutoencoder")),
    "sparse_ae": _aepipe(_variant("SparseAutoencoder")),
    "cae": _aepipe(_variant("ContractiveAutoencoder")),
    "vae": _aepipe(_variant("VariationalAutoencoder")),
    "pca": _aepipe(_pca),
    "iforest": _aepipe(_iforest),
    "pyod_knn": _pyod("knn", "KNN"),
    "pyod_lof": _pyod("lof", "LOF"),
    "pyod_ecod": _pyod("ecod", "ECOD"),
    "pyod_pca": _pyod("pca", "PCA"),
    "pyod_ae": _pyod("auto_encoder", "AutoEncoder"),
    "pyod_vae": _pyod("vae", "VAE"),
    "pyod_dif": _pyod("dif", "DIF"),
}
# The default against the panel the issue names, at their libraries' defaults.
PANEL = ["default", "iforest", "pyod_knn", "pyod_lof", "pyod_ecod", "pyod_pca", "pyod_ae",
         "pyod_vae", "pyod_dif"]


def dataset_files(folders, half: str):
    """``(folder name, path)`` of every ``.npz`` in ``folders`` that belongs to ``half``.

    Each folder's files sorted by name go to A, B, A, B, ... (the first to A).
    """
    chosen = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for position, path in enumerate(sorted(folder.glob("*.npz"), key=lambda p: p.name)):
            if half == "all" or "AB"[position % 2] == half:
                chosen.append((folder.name, path))
    return chosen


# --------------------------------------------------------------- protocol
def split(X, y, seed):
    """ADBench's split: stratified cap at 30,000 rows, then stratified 70/30."""
    from sklearn.model_selection import train_test_split

    if len(X) > MAX_ROWS:
        X, _, y, _ = train_test_split(X, y, train_size=MAX_ROWS, stratify=y, random_state=seed)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)


def append_columns(X_train, X_test, kind: str, seed: int):
    """``(X_train, X_test)`` with ``max(8, d)`` columns of ``kind`` appended (see ``--append``)."""
    rng = np.random.default_rng(seed)
    d = X_train.shape[1]
    m = max(8, d)
    if kind in ("flags", "zero-inflated"):
        rate = np.exp(rng.uniform(np.log(0.002), np.log(0.2), m))
        new = [(rng.random((len(X), m)) < rate).astype(np.float64) for X in (X_train, X_test)]
        if kind == "zero-inflated":
            new = [flags * rng.lognormal(0.0, 1.0, size=flags.shape) for flags in new]
    elif kind == "indicators":
        columns = rng.integers(0, d, m)
        level = rng.uniform(0.8, 0.995, m)
        cut = np.array([np.quantile(X_train[:, c], q) for c, q in zip(columns, level)])
        new = [(X[:, columns] > cut).astype(np.float64) for X in (X_train, X_test)]
    else:
        raise ValueError(f"Unknown column kind {kind!r}; expected one of {APPEND_KINDS}.")
    return np.hstack([X_train, new[0]]), np.hstack([X_test, new[1]])


def run_one(name, X_train, X_test, y_test, seed):
    from sklearn.metrics import average_precision_score, roc_auc_score

    fit, score = DETECTORS[name](seed)
    start = time.perf_counter()
    fit(X_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = np.asarray(score(X_test), dtype=np.float64)
    score_s = time.perf_counter() - start
    scores = np.nan_to_num(scores, nan=0.0, posinf=np.finfo(np.float64).max)
    return dict(auroc=roc_auc_score(y_test, scores), ap=average_precision_score(y_test, scores),
                fit_s=fit_s, score_s=score_s)


def read_rows(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        return [
            {**row, "seed": int(row["seed"]),
             **{k: float(row[k]) for k in ("auroc", "ap", "fit_s", "score_s")}}
            for row in csv.DictReader(handle)
        ]


def append_row(path, row, fields=FIELDS):
    """Append ``row``'s ``fields`` to the CSV at ``path`` (a header first when it is new)."""
    new = not os.path.exists(path)
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerow({k: row[k] for k in fields})


# --------------------------------------------------------------- tables
def summarise(frame, detectors):
    """Per-detector means over the datasets every detector finished; ranks over all of them."""
    import pandas as pd

    per = frame.groupby(["dataset", "detector"])[["auroc", "ap", "fit_s", "score_s"]].mean()
    columns = [d for d in detectors if d in set(frame.detector)]
    auroc = per["auroc"].unstack("detector").reindex(columns=columns)
    complete = auroc.dropna()
    ap = per["ap"].unstack("detector").reindex(index=complete.index, columns=columns)
    fit = per["fit_s"].unstack("detector").reindex(index=complete.index, columns=columns)
    summary = pd.DataFrame({
        "mean_auroc": complete.mean(),
        "mean_ap": ap.mean(),
        "mean_rank": complete.rank(axis=1, ascending=False).mean(),
        "mean_ap_rank": ap.rank(axis=1, ascending=False).mean(),
        "total_fit_s": fit.sum(),
        "n_seeds": frame.groupby("detector").seed.nunique(),
    }).reindex(columns).sort_values("mean_rank")
    return auroc, ap, complete, summary


def report(rows, detectors, datasets, folders=None):
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        print("No results.")
        return
    frame = frame[frame.detector.isin(detectors) & frame.dataset.isin(datasets)]
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 30)
    auroc, ap, complete, summary = summarise(frame, detectors)
    if len(complete) < len(auroc):
        print(f"({len(auroc) - len(complete)} dataset(s) lack some detector; the mean tables "
              "use the datasets every detector finished.)")
    print("\nROC-AUC per dataset (mean over seeds)")
    print(auroc.round(3).to_string())
    print("\nAverage precision per dataset (mean over seeds)")
    print(ap.round(3).to_string())
    groups = [("all", complete.index)]
    if folders:
        kinds = sorted({folders[name] for name in complete.index})
        if len(kinds) > 1:
            groups += [(kind, [n for n in complete.index if folders[n] == kind]) for kind in kinds]
    for label, names in groups:
        _, _, done, table = summarise(frame[frame.dataset.isin(names)], detectors)
        print(f"\nMean over {len(done)} datasets ({label}; fit time: sum over datasets of the "
              "mean over seeds)")
        print(table.round(4).to_string())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", nargs="+", default=[str(d) for d in DEFAULT_DATA],
                        help="folders of .npz datasets (default: adbench and adbench_cv)")
    parser.add_argument("--half", choices=["A", "B", "all"], default="all",
                        help="the fixed half of every folder to run (see the module docstring)")
    parser.add_argument("--out", default=None, help="CSV to append to (resumable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--detectors", nargs="+", default=PANEL, choices=list(DETECTORS))
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="dataset names (file stems) to run; default: all of the half")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for every detector (default 1)")
    parser.add_argument("--append", choices=APPEND_KINDS, default=None,
                        help="append columns of this kind to every table (see the module docstring)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)

    files = dataset_files(args.data_dir, args.half)
    if not files:
        print(f"No ADBench data in {args.data_dir}; skipping the benchmark.")
        return 0
    if args.datasets:
        files = [(kind, f) for kind, f in files if f.stem in set(args.datasets)]
    suffix = f"+{args.append}" if args.append else ""
    names = [f.stem + suffix for _, f in files]
    folders = {f.stem + suffix: kind for kind, f in files}

    import warnings

    import torch

    torch.set_num_threads(args.threads)
    # PyOD's data loaders ask for pinned memory on every fit; there is no accelerator here.
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    rows = read_rows(args.out)
    done = {(r["dataset"], r["detector"], r["seed"]) for r in rows}
    if not args.report_only:
        for _, path in files:
            data = np.load(path)
            X, y = data["X"].astype(np.float64), data["y"].astype(int)
            dataset = path.stem + suffix
            for seed in args.seeds:
                if all((dataset, name, seed) in done for name in args.detectors):
                    continue
                X_train, X_test, _, y_test = split(X, y, seed)
                if args.append:
                    X_train, X_test = append_columns(X_train, X_test, args.append, seed)
                for name in args.detectors:
                    if (dataset, name, seed) in done:
                        continue
                    result = run_one(name, X_train, X_test, y_test, seed)
                    row = dict(dataset=dataset, detector=name, seed=seed, **result)
                    rows.append(row)
                    if args.out:
                        append_row(args.out, row)
                    print(f"{dataset:>24} {name:>10} seed={seed} auroc={row['auroc']:.3f} "
                          f"ap={row['ap']:.3f} fit={row['fit_s']:.1f}s", flush=True)
    print(f"\nHalf {args.half}: {len(names)} datasets.")
    report(rows, args.detectors, names, folders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
