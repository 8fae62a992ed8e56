"""Synthetic generators and benchmark-file loaders."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat

from aepipe.datasets import (
    SENSOR_ANOMALY_TYPES,
    load_adbench,
    load_odds,
    load_skab,
    make_mixed_table,
    make_sensor_stream,
)
from aepipe.exceptions import DataValidationError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"



def test_mixed_table_types_labels_and_rate():
    data = make_mixed_table(200, contamination=0.1, random_state=0)
    X, y = data.X, data.y
    assert X.shape == (200, 9)
    kinds = X.dtypes.map(str).value_counts().to_dict()
    assert kinds == {"float64": 5, "category": 2, "bool": 2}
    assert int(y.sum()) == 20
    assert set(data.anomaly_type[y == 1]) <= {"numeric", "categorical", "boolean"}
    assert (data.anomaly_type[y == 0] == "none").all()


def test_mixed_table_is_seeded_and_leaves_global_rng_alone():
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking it is untouched
    a = make_mixed_table(100, random_state=3, return_X_y=True)
    b = make_mixed_table(100, random_state=3, return_X_y=True)
    c = make_mixed_table(100, random_state=4, return_X_y=True)
    pd.testing.assert_frame_equal(a[0], b[0])
    assert not a[0].equals(c[0])
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_mixed_table_anomalies_are_detectable():
    from aepipe import PCADetector
    from aepipe.scoring import anomaly_roc_auc

    X, y = make_mixed_table(600, random_state=0, return_X_y=True)
    assert anomaly_roc_auc(PCADetector(n_components=2).fit(X), X, y) > 0.8


@pytest.mark.parametrize("kwargs, match", [
    ({"n_samples": 5}, "n_samples"),
    ({"contamination": 0.9}, "contamination"),
])
def test_mixed_table_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_mixed_table(**kwargs)


def test_sensor_stream_labels_types_and_clean_signal():
    stream = make_sensor_stream(600, 3, n_anomalies=8, random_state=1)
    assert stream.X.shape == stream.clean.shape == (600, 3)
    assert isinstance(stream.X.index, pd.DatetimeIndex)
    assert len(stream.events) == 8
    assert set(stream.anomaly_type.unique()) <= {"none", *SENSOR_ANOMALY_TYPES}
    assert ((stream.y == 1) == (stream.anomaly_type != "none")).all()
    # Outside events, the observed stream is the clean signal plus small noise.
    normal = stream.y.to_numpy() == 0
    residual = (stream.X - stream.clean).to_numpy()[normal]
    assert np.abs(residual).max() < 0.5 * stream.clean.to_numpy().std()


@pytest.mark.parametrize("kind", SENSOR_ANOMALY_TYPES)
def test_sensor_stream_injects_each_kind(kind):
    stream = make_sensor_stream(400, 2, n_anomalies=3, anomaly_types=[kind], random_state=0)
    event = stream.events.iloc[0]
    rows = slice(event["start"], event["stop"])
    observed = stream.X[event["channel"]].iloc[rows].to_numpy()
    clean = stream.clean[event["channel"]].iloc[rows].to_numpy()
    assert (stream.anomaly_type.iloc[rows] == kind).all()
    if kind == "stuck":
        assert np.ptp(observed) == 0
    else:
        assert np.abs(observed - clean).max() > 3 * 0.05 * stream.clean.std().min()


def test_sensor_stream_is_seeded():
    a = make_sensor_stream(300, 2, n_anomalies=3, random_state=5)
    b = make_sensor_stream(300, 2, n_anomalies=3, random_state=5)
    pd.testing.assert_frame_equal(a.X, b.X)
    pd.testing.assert_frame_equal(a.events, b.events)


def test_sensor_stream_rejects_unknown_kind():
    with pytest.raises(ValueError, match="anomaly_types"):
        make_sensor_stream(anomaly_types=["meteor"])


def test_load_adbench_round_trip(tmp_path):
    path = tmp_path / "toy.npz"
    np.savez(path, X=np.ones((4, 2)), y=np.array([0, 0, 1, 0]))
    X, y = load_adbench(path)
    assert X.shape == (4, 2) and y.tolist() == [0, 0, 1, 0]


def test_load_odds_round_trip(tmp_path):
    path = tmp_path / "toy.mat"
    savemat(path, {"X": np.ones((3, 2)), "y": np.array([[0], [1], [0]])})
    X, y = load_odds(path)
    assert X.shape == (3, 2) and y.tolist() == [0, 1, 0]


def test_load_skab_round_trip(tmp_path):
    path = tmp_path / "toy.csv"
    path.write_text(
        "datetime;Pressure;Temperature;anomaly;changepoint\n"
        "2020-03-09 10:14:33;0.1;90.0;0.0;0.0\n"
        "2020-03-09 10:14:34;0.2;90.1;1.0;1.0\n"
    )
    data = load_skab(path)
    assert list(data.X.columns) == ["Pressure", "Temperature"]
    assert isinstance(data.X.index, pd.DatetimeIndex)
    assert data.y.tolist() == [0, 1] and data.changepoint.tolist() == [0, 1]


@pytest.mark.parametrize("loader, name", [
    (load_adbench, "absent.npz"), (load_odds, "absent.mat"), (load_skab, "absent.csv"),
])
def test_loaders_missing_file(tmp_path, loader, name):
    with pytest.raises(FileNotFoundError, match="absent"):
        loader(tmp_path / name)


def test_loaders_bad_contents(tmp_path):
    npz = tmp_path / "bad.npz"
    np.savez(npz, features=np.ones((2, 2)))
    with pytest.raises(DataValidationError, match=r"lacks array\(s\) \['X', 'y'\]"):
        load_adbench(npz)
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"not a matlab file")
    with pytest.raises(DataValidationError, match="not a readable MATLAB file"):
        load_odds(garbage)
    comma = tmp_path / "comma.csv"
    comma.write_text("datetime,a\n2020-01-01,1\n")
    with pytest.raises(DataValidationError, match="no 'datetime' column"):
        load_skab(comma)
    with pytest.raises(DataValidationError, match="should end in .npz"):
        load_adbench(comma)


@pytest.mark.skipif(not (SHARED_DATA / "adbench").is_dir(), reason="../shared/data not present")
def test_loaders_read_the_shared_benchmark_files():
    X, y = load_adbench(SHARED_DATA / "adbench" / "6_cardio.npz")
    assert X.shape[0] == len(y) and 0 < y.mean() < 0.5
    skab = load_skab(SHARED_DATA / "skab" / "valve1" / "0.csv")
    assert skab.X.shape[1] == 8 and skab.y.sum() > 0
