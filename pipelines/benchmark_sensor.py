"""Sensor benchmark: aepipe's default windowed detector against the peer panel, SKAB and SMAP.

Two benchmarks side by side (``../shared/data/README.md`` has both protocols):

- **SKAB** (pump test bed; ``skab/valve1/*.csv``, 16 files): fit on the first
  400 rows of a file (normal operation), flag every row of the file (SKAB's
  published protocol, training rows included), point-wise F1 / FAR / MAR
  pooled over the files; also the per-file average precision of the row
  score. **Normal operation**: ``skab/anomaly-free/anomaly-free.csv`` cut
  into 1,150-row stretches; each detector is fitted on a stretch's first 400
  rows and the share of the other 750 (all normal) it flags is its false-alarm
  rate there.
- **SMAP** (NASA telemetry; ``nasa/SMAP/*.npz``, 54 channels, 25 columns: the
  telemetry value and 24 0/1 command flags): fit on ``train``, score every
  ``test`` row. Average precision of the row score (threshold-free); with the
  detector's alarm limit: event recall (labelled sequences with an alarm
  inside), alarm precision (alarm runs touching a labelled sequence), their
  F1, and false-alarm runs per 10,000 normal rows. Alarm precision pools
  every stream's alarm runs, so a second table names each detector's
  stream with the most false-alarm runs and its share of them.

Halves (``--half``), fixed before any result was seen: in each folder the
files sorted by name go to A, B, A, B, ... (the first to A; SKAB's numbered
files by number); the anomaly-free recording's stretches alternate the same
way. Design on A, confirm on B.

Detectors, at their libraries' defaults, all fitted on the same training rows
and all given the same alarm-limit rule where they have none of their own
(SKAB's control chart, ``1.5 * q99`` of the training rows' scores, which is
also the default detector's), so the event metrics compare detectors, not
limit rules:

- ``default``: :func:`aepipe.make_default_sensor_detector`;
  ``previous_default``: the default before issue #17 (``max_epochs=100``),
  for reference; ``default_max``: the default with ``combine="max"``;
  ``default_context``: the default with ``context_channels="two_valued"``
  (command flags read in every window but not scored);
- ``pca_rows``: PCA T^2 + Q on single rows (:class:`aepipe.sensor.WindowedPCA`,
  ``width=1``); ``pca_w32``: the same on 32-row windows. Both are aepipe
  detectors and share its scaling rules (a two-valued channel scaled by its
  step), so they gain from aepipe's own work; ``pca_w32_std`` is the PCA peer
  at its textbook default: the same statistic on windows of channels
  standardised by their standard deviation (SKAB's baseline scaling);
- ``iforest``: scikit-learn's IsolationForest on standardised rows;
- ``pyod_ae_w32``, ``pyod_ae_w60``: PyOD's AutoEncoder on flattened,
  standardised 32- and 60-row windows (a row takes the mean of the windows
  covering it);
- ``kmeans_w32``: the k-means subsequence detector (each standardised 32-row
  window's distance to the nearest of 20 centroids learned on the training
  windows; the strongest simple method on NASA data in TSB-AD, Liu and
  Paparrizos, NeurIPS 2024), rows by the mean of their windows.

Runs are resumable: with ``--out results.csv`` each finished (benchmark,
stream, detector, seed) row is appended at once and rows already there are
skipped; tables print from everything in the file for the selected half.

Examples
--------
    python pipelines/benchmark_sensor.py --half A --out /tmp/sensor.csv
    python pipelines/benchmark_sensor.py --half B --detectors default pyod_ae_w32
    python pipelines/benchmark_sensor.py --half all --report-only --out /tmp/sensor.csv
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
N_TRAIN = 400  # SKAB: training rows at the start of each file
STRETCH = 1150  # SKAB normal operation: rows per stretch (a valve1 file's length)
FIELDS = ["benchmark", "stream", "detector", "seed", "ap", "n_rows", "n_normal", "tp", "fp",
          "fn", "tn", "heldout_fp", "heldout_tn", "events", "detected_events", "alarm_runs",
          "true_alarm_runs", "fit_s", "score_s"]


# --------------------------------------------------------------- data
def _half(items: list, half: str) -> list:
    return [item for position, item in enumerate(items)
            if half == "all" or "AB"[position % 2] == half]


def skab_streams(root: Path, half: str):
    """``(benchmark, name, train frame, test frame, labels)`` of SKAB valve1 and normal operation."""
    folder = root / "valve1"
    paths = sorted(folder.glob("*.csv"), key=lambda p: (len(p.stem), p.stem)) \
        if folder.is_dir() else []
    for path in _half(paths, half):
        frame = pd.read_csv(path, sep=";", index_col="datetime", parse_dates=True).sort_index()
        labels = frame["anomaly"].to_numpy().astype(bool)
        features = frame.drop(columns=["anomaly", "changepoint"], errors="ignore")
        yield "skab", f"valve1/{path.name}", features.iloc[:N_TRAIN], features, labels
    path = root / "anomaly-free" / "anomaly-free.csv"
    if path.is_file():
        frame = pd.read_csv(path, sep=";", index_col="datetime", parse_dates=True).sort_index()
        frame = frame.drop(columns=["anomaly", "changepoint"], errors="ignore")
        starts = list(range(0, len(frame) - STRETCH + 1, STRETCH))
        for start in _half(starts, half):
            stretch = frame.iloc[start:start + STRETCH]
            yield ("skab_normal", f"anomaly-free[{start}:{start + STRETCH}]",
                   stretch.iloc[:N_TRAIN], stretch, np.zeros(len(stretch), dtype=bool))


def smap_streams(root: Path, half: str):
    """``(benchmark, name, train frame, test frame, labels)`` of the SMAP channels."""
    paths = sorted(root.glob("*.npz"), key=lambda p: p.name) if root.is_dir() else []
    for path in _half(paths, half):
        data = np.load(path)
        columns = ["value", *[f"command_{k}" for k in range(1, data["train"].shape[1])]]
        train = pd.DataFrame(data["train"].astype(np.float64), columns=columns)
        test = pd.DataFrame(data["test"].astype(np.float64), columns=columns)
        yield "smap", path.stem, train, test, data["labels"].astype(bool)


# --------------------------------------------------------------- detectors
class _Aepipe:
    """An aepipe windowed detector: its own score and its own alarm limit."""

    def __init__(self, make):
        self.make = make

    def fit(self, train):
        self.model_ = self.make().fit(train)
        return self

    def score(self, frame):
        return -self.model_.score_samples(frame)

    def alarms(self, frame, scores):
        return scores > -self.model_.offset_


class StandardisedWindowedPCA(_Aepipe):
    """PCA T^2 + Q on windows of channels standardised by their standard deviation.

    The PCA peer as SKAB's baseline and a textbook implementation scale it
    (``StandardScaler``): the same T^2 + Q statistic and limit as aepipe's
    :class:`~aepipe.sensor.WindowedPCA`, without aepipe's own scaling rules
    (two-valued channels by their step).
    """

    def __init__(self, width):
        super().__init__(None)
        self.width = width

    def fit(self, train):
        from sklearn.preprocessing import StandardScaler

        from aepipe.sensor import WindowedPCA

        self.scaler_ = StandardScaler().fit(train.to_numpy(dtype=np.float64))
        self.model_ = WindowedPCA(width=self.width, standardize=False).fit(self._scaled(train))
        return self

    def _scaled(self, frame):
        return self.scaler_.transform(frame.to_numpy(dtype=np.float64))

    def score(self, frame):
        return -self.model_.score_samples(self._scaled(frame))


class _Peer:
    """A peer on standardised rows or windows; its limit: the control chart on training rows."""

    width = 1

    def __init__(self, seed):
        self.seed = seed

    def _values(self, frame):
        return self.scaler_.transform(frame.to_numpy(dtype=np.float64))

    def _windows(self, values):
        from aepipe.sensor import sliding_windows

        windows = sliding_windows(values, self.width)
        return windows.reshape(len(windows), -1)

    def _rows(self, window_scores, n_rows):
        from aepipe.sensor import window_starts, windows_to_points

        return windows_to_points(np.asarray(window_scores, dtype=np.float64),
                                 window_starts(n_rows, self.width), self.width, n_rows, "mean")

    def fit(self, train):
        from sklearn.preprocessing import StandardScaler

        from aepipe.thresholds import ControlChartThreshold

        self.scaler_ = StandardScaler().fit(train.to_numpy(dtype=np.float64))
        self._fit(self._windows(self._values(train)))
        self.limit_ = ControlChartThreshold().fit(self.score(train)).threshold_
        return self

    def score(self, frame):
        values = self._values(frame)
        return self._rows(self._score(self._windows(values)), len(values))

    def alarms(self, frame, scores):
        return scores > self.limit_


class IForestRows(_Peer):
    def _fit(self, X):
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(random_state=self.seed).fit(X)

    def _score(self, X):
        return -self.model_.score_samples(X)


class PyODWindowedAE(_Peer):
    def __init__(self, seed, width):
        super().__init__(seed)
        self.width = width

    def _fit(self, X):
        from pyod.models.auto_encoder import AutoEncoder

        self.model_ = AutoEncoder(random_state=self.seed, verbose=0).fit(X)

    def _score(self, X):
        return self.model_.decision_function(X)


class KMeansWindows(_Peer):
    """Distance of each window to the nearest of ``k`` centroids of the training windows."""

    def __init__(self, seed, width=32, k=20):
        super().__init__(seed)
        self.width, self.k = width, k

    def _fit(self, X):
        from sklearn.cluster import KMeans

        self.model_ = KMeans(n_clusters=min(self.k, len(X)), n_init=1,
                             random_state=self.seed).fit(X)

    def _score(self, X):
        return self.model_.transform(X).min(axis=1)


def make_detectors(seed: int) -> dict:
    from aepipe import make_default_sensor_detector
    from aepipe.sensor import WindowedPCA

    return {
        "default": lambda: _Aepipe(lambda: make_default_sensor_detector(random_state=seed)),
        # The default before issue #17 (up to 100 epochs), for reference.
        "previous_default": lambda: _Aepipe(lambda: make_default_sensor_detector(
            random_state=seed, max_epochs=100)),
        # The default with its channels combined by the most surprising one.
        "default_max": lambda: _Aepipe(lambda: make_default_sensor_detector(
            random_state=seed, combine="max")),
        # The default reading its two-valued channels (command flags) as context:
        # in every window, but not scored.
        "default_context": lambda: _Aepipe(lambda: make_default_sensor_detector(
            random_state=seed, context_channels="two_valued")),
        "pca_rows": lambda: _Aepipe(lambda: WindowedPCA(width=1)),
        "pca_w32": lambda: _Aepipe(lambda: WindowedPCA(width=32)),
        "pca_w32_std": lambda: StandardisedWindowedPCA(32),
        "iforest": lambda: IForestRows(seed),
        "pyod_ae_w32": lambda: PyODWindowedAE(seed, 32),
        "pyod_ae_w60": lambda: PyODWindowedAE(seed, 60),
        "kmeans_w32": lambda: KMeansWindows(seed),
    }


DETECTORS = list(make_detectors(0))


# --------------------------------------------------------------- metrics
def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open (start, stop) ranges of consecutive True values."""
    padded = np.r_[False, mask, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2]))


def counts(labels: np.ndarray, scores: np.ndarray, alarms: np.ndarray, n_train: int) -> dict:
    from sklearn.metrics import average_precision_score

    alarm_runs = runs(alarms)
    events = runs(labels)
    heldout = slice(n_train, None)
    return {
        "ap": float(average_precision_score(labels, scores)) if labels.any() else np.nan,
        "n_rows": len(labels), "n_normal": int((~labels).sum()),
        "tp": int((alarms & labels).sum()), "fp": int((alarms & ~labels).sum()),
        "fn": int((~alarms & labels).sum()), "tn": int((~alarms & ~labels).sum()),
        "heldout_fp": int((alarms[heldout] & ~labels[heldout]).sum()),
        "heldout_tn": int((~alarms[heldout] & ~labels[heldout]).sum()),
        "events": len(events),
        "detected_events": sum(bool(alarms[a:b].any()) for a, b in events),
        "alarm_runs": len(alarm_runs),
        "true_alarm_runs": sum(bool(labels[a:b].any()) for a, b in alarm_runs),
    }


def run_one(name, seed, train, test, labels, n_train):
    detector = make_detectors(seed)[name]()
    start = time.perf_counter()
    detector.fit(train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = np.nan_to_num(np.asarray(detector.score(test), dtype=np.float64),
                           nan=0.0, posinf=np.finfo(np.float64).max)
    alarms = detector.alarms(test, scores)
    score_s = time.perf_counter() - start
    return {**counts(labels, scores, alarms, n_train), "fit_s": fit_s, "score_s": score_s}


# --------------------------------------------------------------- tables
def _ratio(numerator, denominator):
    return numerator / denominator if denominator else np.nan


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per detector: the benchmark's metrics, averaged over seeds."""
    rows = []
    for (detector, seed), part in frame.groupby(["detector", "seed"]):
        s = part[FIELDS[5:]].sum(numeric_only=True)
        recall = _ratio(s.detected_events, s.events)
        precision = _ratio(s.true_alarm_runs, s.alarm_runs)
        rows.append({
            "detector": detector, "seed": seed, "mean_ap": part.ap.mean(),
            "F1": _ratio(2 * s.tp, 2 * s.tp + s.fp + s.fn), "FAR": _ratio(s.fp, s.fp + s.tn),
            "MAR": _ratio(s.fn, s.fn + s.tp),
            "heldout_FAR": _ratio(s.heldout_fp, s.heldout_fp + s.heldout_tn),
            "event_recall": recall, "alarm_precision": precision,
            "event_F1": _ratio(2 * recall * precision, recall + precision)
            if np.isfinite(recall) and np.isfinite(precision) else np.nan,
            "false_runs_per_10k": 1e4 * _ratio(s.alarm_runs - s.true_alarm_runs, s.n_normal),
            "fit_score_s": s.fit_s + s.score_s, "streams": len(part),
        })
    per_seed = pd.DataFrame(rows)
    return per_seed.groupby("detector").mean(numeric_only=True).drop(columns="seed")


def false_alarm_sources(frame: pd.DataFrame) -> pd.DataFrame:
    """Per detector: its false-alarm runs, and the stream that raised the most of them.

    Alarm precision (and so event F1) pools the alarm runs of every stream,
    so one stream whose normal test rows differ from its training rows can
    decide it; this table shows whether it does (``worst_share``: that
    stream's share of the detector's false-alarm runs). Runs are averaged
    over seeds.
    """
    false_runs = (frame.assign(false_runs=frame.alarm_runs - frame.true_alarm_runs)
                  .groupby(["detector", "stream"]).false_runs.mean())
    rows = []
    for detector, runs in false_runs.groupby(level="detector"):
        runs = runs.droplevel("detector")
        total = runs.sum()
        rows.append({"detector": detector, "false_runs": total, "worst_stream": runs.idxmax(),
                     "worst_runs": runs.max(), "worst_share": _ratio(runs.max(), total)})
    return pd.DataFrame(rows).set_index("detector")


def read_rows(path):
    if not path or not os.path.exists(path):
        return []
    return pd.read_csv(path).to_dict("records")


@functools.cache
def _adbench():
    """``pipelines/benchmark_adbench.py``, loaded once, for its resumable-CSV writer."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "benchmark_adbench", Path(__file__).with_name("benchmark_adbench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def append_row(path, row):
    """Append a result row (``benchmark_adbench.py``'s resumable CSV, with these fields)."""
    _adbench().append_row(path, row, FIELDS)


def report(rows, detectors, streams) -> None:
    frame = pd.DataFrame(rows)
    if frame.empty:
        print("No results.")
        return
    frame = frame[frame.detector.isin(detectors)
                  & frame.set_index(["benchmark", "stream"]).index.isin(streams)]
    with pd.option_context("display.width", 220, "display.max_columns", 30,
                           "display.float_format", "{:.3f}".format):
        for benchmark, columns, sort in [
            ("smap", ["mean_ap", "event_recall", "alarm_precision", "event_F1",
                      "false_runs_per_10k", "fit_score_s", "streams"], "mean_ap"),
            ("skab", ["F1", "FAR", "MAR", "heldout_FAR", "mean_ap", "event_recall",
                      "false_runs_per_10k", "fit_score_s", "streams"], "F1"),
            ("skab_normal", ["heldout_FAR", "false_runs_per_10k", "fit_score_s", "streams"],
             "heldout_FAR"),
        ]:
            part = frame[frame.benchmark == benchmark]
            if part.empty:
                continue
            complete = part.groupby("stream").detector.nunique()
            done = complete[complete == part.detector.nunique()].index
            table = summarise(part[part.stream.isin(done)])[columns]
            table = table.sort_values(sort, ascending=benchmark == "skab_normal")
            print(f"\n{benchmark}: {len(done)} streams, seeds "
                  f"{sorted(part.seed.unique().tolist())}")
            print(table.to_string())
            if benchmark == "smap":
                sources = false_alarm_sources(part[part.stream.isin(done)])
                print("\nsmap false-alarm runs: the stream with the most of them")
                print(sources.loc[table.index].to_string())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skab-dir", type=Path, default=SHARED / "skab")
    parser.add_argument("--smap-dir", type=Path, default=SHARED / "nasa" / "SMAP")
    parser.add_argument("--half", choices=["A", "B", "all"], default="all")
    parser.add_argument("--benchmarks", nargs="+", default=["skab", "smap"],
                        choices=["skab", "smap"])
    parser.add_argument("--detectors", nargs="+", default=DETECTORS, choices=DETECTORS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default=None, help="CSV to append to (resumable)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)

    streams = []
    if "skab" in args.benchmarks:
        streams += list(skab_streams(args.skab_dir, args.half))
    if "smap" in args.benchmarks:
        streams += list(smap_streams(args.smap_dir, args.half))
    if not streams:
        print(f"No data under {args.skab_dir} or {args.smap_dir}; nothing to run.")
        return 0
    rows = read_rows(args.out)
    done = {(r["benchmark"], r["stream"], r["detector"], int(r["seed"])) for r in rows}
    if not args.report_only:
        import torch

        # One thread: on shared CPUs extra OpenMP threads slow training down.
        torch.set_num_threads(1)
        started = time.perf_counter()
        for benchmark, name, train, test, labels in streams:
            n_train = N_TRAIN if benchmark != "smap" else 0
            for detector in args.detectors:
                for seed in args.seeds:
                    if (benchmark, name, detector, seed) in done:
                        continue
                    row = {"benchmark": benchmark, "stream": name, "detector": detector,
                           "seed": seed, **run_one(detector, seed, train, test, labels, n_train)}
                    rows.append(row)
                    if args.out:
                        append_row(args.out, row)
            print(f"  {benchmark} {name} done ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
    report(rows, args.detectors, {(b, n) for b, n, *_ in streams})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
