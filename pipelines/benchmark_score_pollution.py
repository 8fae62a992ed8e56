"""Is the anomaly score itself polluted by columns that carry no signal?

A per-column NLL is summed into the anomaly score. A column with no signal
still adds its marginal cost: a record holding a *rare level of a free
category* (or an extreme draw of a pure-noise column) costs more, whatever
the rest of the record, and may be flagged although nothing is wrong with
it. This measures how much, on aepipe's mixed demo table and on the ADBench
sets of a ``--half`` (the halves rule of ``benchmark_adbench.py``).

Protocol, per table: the table as it is (*clean*), and the table with two
junk columns appended (*junk*): ``noise``, a standard normal column, and
``tag``, a free category with levels of probabilities 60 %, 25 %, 10 %, 4 %
and 1 % (independent of everything). A stratified 70/30 split (training
parts over ``--max-train`` rows subsampled); each detector is fitted on the
training part of both versions (anomalies included, as in ADBench) and
scores the test part. The demo table is drawn with ``random_state=0`` for
half A and ``1`` for half B, as in ``benchmark_explain.py``. Reported:

- ``auc_clean``, ``auc_junk``: ROC-AUC on the test part without and with the
  junk columns (what the junk costs detection);
- ``alarm_common``, ``alarm_rare``: the share of *normal* test records the
  detector flags (``predict == -1``), among those with a common ``tag``
  level (60 %, 25 %, 10 %) and among those with a rare one (4 %, 1 %);
- ``alarm_noise_tail``: the same among normal records with ``|noise| > 2.5``
  (1.2 % of them), against ``alarm_common``;
- ``rank_rare``: the mean percentile of the rare-level normal records'
  anomaly scores among all normal test records (0.5: the level makes no
  difference; 1: they are the most anomalous).

Usage::

    python pipelines/benchmark_score_pollution.py --half A
    python pipelines/benchmark_score_pollution.py --half B --detectors default ae pca
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

TAG_LEVELS = np.array(["t60", "t25", "t10", "t04", "t01"], dtype=object)
TAG_P = np.array([0.60, 0.25, 0.10, 0.04, 0.01])
RARE = {"t04", "t01"}
NOISE_TAIL = 2.5


def _junk(frame: pd.DataFrame, rng) -> pd.DataFrame:
    tag = TAG_LEVELS[rng.choice(len(TAG_LEVELS), size=len(frame), p=TAG_P)]
    return frame.assign(noise=rng.normal(size=len(frame)),
                        tag=pd.Categorical(tag, categories=list(TAG_LEVELS)))


def load_table(name, path, seed, max_train, split):
    """``(train, test, y_test)`` frames of a table, without junk."""
    from sklearn.model_selection import train_test_split

    if path is None:
        from aepipe.datasets import make_mixed_table

        data = make_mixed_table(3000, contamination=0.05, random_state=seed)  # per half
        train, test, _, y_test = train_test_split(data.X, data.y, test_size=0.3,
                                                  stratify=data.y, random_state=seed)
        return train.reset_index(drop=True), test.reset_index(drop=True), y_test.to_numpy()
    data = np.load(path)
    X, y = data["X"].astype(np.float64), data["y"].astype(int)
    X_train, X_test, _, y_test = split(X, y, seed)
    if len(X_train) > max_train:
        X_train = X_train[np.random.default_rng(seed).choice(len(X_train), max_train,
                                                             replace=False)]
    names = [f"x{j}" for j in range(X.shape[1])]
    return pd.DataFrame(X_train, columns=names), pd.DataFrame(X_test, columns=names), y_test


def _detector(name, seed, args):
    from aepipe import Autoencoder, PCADetector, make_default_detector

    if name == "default":
        return make_default_detector(random_state=seed)
    if name == "ae":
        return Autoencoder(max_epochs=args.ae_epochs, random_state=seed)
    return PCADetector(random_state=seed)


def measure(name, path, args, split) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    seed = {"A": 0, "B": 1}.get(args.half, 2) + args.seed if path is None else args.seed
    train, test, y_test = load_table(name, path, seed, args.max_train, split)
    rng = np.random.default_rng(args.seed + 7)
    train_junk, test_junk = _junk(train, rng), _junk(test, rng)
    normal = y_test == 0
    tag = test_junk["tag"].astype(object).to_numpy()
    rare = normal & np.isin(tag, list(RARE))
    common = normal & ~np.isin(tag, list(RARE))
    noise_tail = normal & (np.abs(test_junk["noise"].to_numpy()) > NOISE_TAIL)
    rows = []
    for detector_name in args.detectors:
        clean = _detector(detector_name, args.seed, args).fit(train)
        junk = _detector(detector_name, args.seed, args).fit(train_junk)
        score_junk = junk.anomaly_score(test_junk)
        alarms = junk.predict(test_junk) == -1
        percentile = pd.Series(score_junk[normal]).rank(pct=True).to_numpy()
        rows.append(dict(
            dataset=name, detector=detector_name, n_normal=int(normal.sum()),
            n_rare=int(rare.sum()),
            auc_clean=roc_auc_score(y_test, clean.anomaly_score(test)) if y_test.any() else np.nan,
            auc_junk=roc_auc_score(y_test, score_junk) if y_test.any() else np.nan,
            alarm_clean=float(np.mean(clean.predict(test)[normal] == -1)),
            alarm_common=float(alarms[common].mean()), alarm_rare=float(alarms[rare].mean()),
            alarm_noise_tail=float(alarms[noise_tail].mean()) if noise_tail.any() else np.nan,
            rank_rare=float(percentile[rare[normal]].mean()),
        ))
    return rows


def report(frame: pd.DataFrame) -> None:
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 200)
    columns = ["auc_clean", "auc_junk", "alarm_clean", "alarm_common", "alarm_rare",
               "alarm_noise_tail", "rank_rare"]
    print("\nPer dataset")
    print(frame.set_index(["dataset", "detector"])[["n_rare", *columns]].round(3).to_string())
    summary = frame.groupby("detector")[columns].mean()
    summary["rare/common alarm ratio"] = (frame.groupby("detector")["alarm_rare"].mean()
                                          / frame.groupby("detector")["alarm_common"].mean())
    summary["tables rare > 2x common"] = frame.assign(
        over=frame.alarm_rare > 2 * frame.alarm_common).groupby("detector")["over"].sum()
    print(f"\nMean over {frame.dataset.nunique()} tables")
    print(summary.round(3).to_string())
    # Pooled over every normal record of every table: tables with a handful of rare-level
    # records weigh by their count, not as much as the others.
    n_common = frame.n_normal - frame.n_rare
    pooled = frame.assign(rare_alarms=frame.alarm_rare * frame.n_rare,
                          common_alarms=frame.alarm_common * n_common, n_common=n_common)
    pooled = pooled.groupby("detector")[["rare_alarms", "n_rare", "common_alarms",
                                         "n_common"]].sum()
    print("\nPooled over all normal test records: alarm rate with a rare / a common tag level")
    print(pd.DataFrame({
        "alarm_rare": pooled.rare_alarms / pooled.n_rare,
        "alarm_common": pooled.common_alarms / pooled.n_common,
        "n_rare": pooled.n_rare.astype(int), "n_common": pooled.n_common.astype(int),
    }).round(3).to_string())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", nargs="+",
                        default=[str(REPO.parent / "shared" / "data" / d)
                                 for d in ("adbench", "adbench_cv")])
    parser.add_argument("--half", choices=["A", "B", "all"], default="A")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="dataset names (file stems, or 'demo'); default: the half")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train", type=int, default=2000)
    parser.add_argument("--detectors", nargs="+", default=["default"],
                        choices=["default", "ae", "pca"])
    parser.add_argument("--ae-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the per-table rows to this CSV")
    args = parser.parse_args(argv)

    import torch
    from benchmark_explain import _adbench_module

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    adbench = _adbench_module()
    files = adbench.dataset_files(args.data_dir, args.half)
    tables = [("demo", None)] + [(path.stem, path) for _, path in files]
    if args.datasets:
        tables = [(n, p) for n, p in tables if n in set(args.datasets)]
    started = time.perf_counter()
    rows = []
    for name, path in tables:
        start = time.perf_counter()
        found = measure(name, path, args, adbench.split)
        rows += found
        print(f"{name:>24} {time.perf_counter() - start:6.1f}s " + "  ".join(
            f"{r['detector']}: alarms common {r['alarm_common']:.3f} rare {r['alarm_rare']:.3f}"
            for r in found), flush=True)
    print(f"\nHalf {args.half}, seed {args.seed}: {len(tables)} tables, "
          f"{time.perf_counter() - started:.0f} s.")
    frame = pd.DataFrame(rows)
    if args.out:
        frame.to_csv(args.out, index=False)
    report(frame)
    return 0


if __name__ == "__main__":
    sys.exit(main())
