"""The benchmark scripts' own logic, on small made-up data (no ../shared needed)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "pipelines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def adbench():
    return _load("benchmark_adbench")


@pytest.mark.parametrize("kind", ["flags", "indicators", "zero-inflated"])
def test_append_columns_adds_columns_of_the_kind_drawn_per_seed(adbench, kind):
    rng = np.random.default_rng(0)
    X_train, X_test = rng.normal(size=(2000, 5)), rng.normal(size=(500, 5))
    A_train, A_test = adbench.append_columns(X_train, X_test, kind, seed=3)
    assert A_train.shape == (2000, 13) and A_test.shape == (500, 13)
    np.testing.assert_array_equal(A_train[:, :5], X_train)
    np.testing.assert_array_equal(A_test[:, :5], X_test)
    flags = A_train[:, 5:] != 0
    if kind == "zero-inflated":  # 0, or a log-normal amount
        assert len(np.unique(A_train[:, 5:])) > 100 and (A_train[:, 5:] >= 0).all()
    else:
        assert set(np.unique(A_train[:, 5:])) == {0.0, 1.0}
    rates = flags.mean(axis=0)
    assert (rates <= 0.25).all() and (rates > 0).all()
    again = adbench.append_columns(X_train, X_test, kind, seed=3)
    np.testing.assert_array_equal(again[0], A_train)
    assert not np.array_equal(adbench.append_columns(X_train, X_test, kind, seed=4)[0], A_train)
    if kind == "indicators":  # each flag marks a high value of one of the columns
        assert all(any(X_train[flags[:, j], c].min() >= X_train[~flags[:, j], c].max()
                       for c in range(5)) for j in range(8))


def test_flags_runs_are_stored_under_their_own_dataset_name(adbench, tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "tables"
    data.mkdir()
    X = rng.normal(size=(300, 4))
    y = np.zeros(300, dtype=int)
    y[:15] = 1
    X[:15] += 4.0
    np.savez(data / "toy.npz", X=X, y=y)
    out = tmp_path / "results.csv"
    for flags in ([], ["--append", "flags"]):
        assert adbench.main(["--data-dir", str(data), "--seeds", "0", "--detectors", "iforest",
                             "--out", str(out), *flags]) == 0
    rows = adbench.read_rows(str(out))
    assert sorted(r["dataset"] for r in rows) == ["toy", "toy+flags"]
    assert all(r["auroc"] > 0.8 for r in rows)
    assert "toy+flags" in capsys.readouterr().out


def test_false_alarm_sources_names_the_stream_that_raised_most_false_runs():
    import pandas as pd

    sensor = _load("benchmark_sensor")
    frame = pd.DataFrame({
        "detector": ["ae", "ae", "ae", "ae", "pca", "pca"],
        "stream": ["s1", "s2", "s1", "s2", "s1", "s2"],
        "seed": [0, 0, 1, 1, 0, 0],
        "alarm_runs": [10, 2, 14, 2, 0, 0],
        "true_alarm_runs": [1, 1, 1, 1, 0, 0],
    })
    sources = sensor.false_alarm_sources(frame)
    # ae: s1 raises 9 and 13 false runs over the seeds (mean 11), s2 1: 11 of 12.
    assert sources.loc["ae", "worst_stream"] == "s1"
    assert sources.loc["ae", "false_runs"] == 12
    assert sources.loc["ae", "worst_share"] == pytest.approx(11 / 12)
    # No false alarms at all: no share to report.
    assert sources.loc["pca", "false_runs"] == 0
    assert np.isnan(sources.loc["pca", "worst_share"])
