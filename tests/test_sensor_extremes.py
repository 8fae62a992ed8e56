"""Extreme readings in sensor streams: a huge one stays local, one beyond float32 is refused.

A window's score reaches only the rows that window covers, however large it is
(``windows_to_points`` adds, never subtracts, window scores), and a reading the
float32 networks cannot hold is an error naming its channel and row, at fit
and at score, as for the tabular detectors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import aepipe
from aepipe.datasets import make_sensor_stream
from aepipe.exceptions import DataValidationError
from aepipe.sensor import (
    WindowedPCA,
    make_default_sensor_detector,
    window_starts,
    windows_to_points,
)
from aepipe.sensor._windows import POINT_RULES

WIDTH = 8


def _detector(kind, **params):
    if kind == "default":
        return make_default_sensor_detector(width=WIDTH, max_epochs=2, random_state=0, **params)
    return WindowedPCA(width=WIDTH, **params)


@pytest.fixture(scope="module")
def stream():
    return make_sensor_stream(600, 3, n_anomalies=0, random_state=0).X.reset_index(drop=True)


# ------------------------------------------------------------ window-to-point rules
def _brute_force(values, starts, width, n_rows, rule):
    """Each row from the windows covering it, one row at a time."""
    out = np.empty((n_rows, values.shape[1]))
    for row in range(n_rows):
        covering = [i for i, start in enumerate(starts) if start <= row < start + width]
        if rule == "last":  # the latest window ended by this row, else the first
            ended = [i for i, start in enumerate(starts) if start + width - 1 <= row]
            out[row] = values[ended[-1] if ended else 0]
        else:
            out[row] = {"mean": np.mean, "max": np.max, "min": np.min}[rule](
                values[covering], axis=0)
    return out


def _check_against_brute_force(values, starts, width, n_rows, rule):
    got = windows_to_points(values, starts, width, n_rows, rule)
    expected = _brute_force(values, starts, width, n_rows, rule)
    # Rounding of a mean is bounded by the magnitudes it adds up, row by row.
    magnitude = _brute_force(np.abs(values), starts, width, n_rows, "mean")
    assert np.all(np.abs(got - expected) <= 1e-12 * magnitude), (got, expected)


@pytest.mark.parametrize("rule", POINT_RULES)
def test_a_huge_window_score_reaches_only_the_rows_it_covers(rule):
    values = np.ones(20)
    values[5] = 1e300
    got = windows_to_points(values, np.arange(20), 4, 23, rule)
    inside = np.zeros(23, dtype=bool)
    inside[5:9] = True
    np.testing.assert_array_equal(got[~inside], 1.0)
    assert np.all(got[inside] >= 1.0)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n_rows=st.integers(1, 40), k=st.integers(1, 3),
       huge=st.sampled_from([0.0, 1e300, -1e300, 1e200]))
def test_windows_to_points_matches_brute_force(data, n_rows, k, huge):
    width = data.draw(st.integers(1, n_rows), label="width")
    stride = data.draw(st.integers(1, width), label="stride")  # every row covered
    starts = window_starts(n_rows, width, stride)
    values = np.asarray(data.draw(st.lists(
        st.floats(-1e3, 1e3, allow_nan=False), min_size=len(starts) * k,
        max_size=len(starts) * k), label="values")).reshape(len(starts), k)
    if huge:
        values[data.draw(st.integers(0, len(starts) - 1), label="huge window"),
               data.draw(st.integers(0, k - 1), label="huge column")] = huge
    for rule in POINT_RULES:
        _check_against_brute_force(values, starts, width, n_rows, rule)


def test_windows_to_points_keeps_one_dimensional_values():
    starts = window_starts(30, 7, 3)
    values = np.random.default_rng(0).normal(size=len(starts))
    got = windows_to_points(values, starts, 7, 30, "mean")
    assert got.shape == (30,)
    np.testing.assert_allclose(got, _brute_force(values[:, None], starts, 7, 30, "mean")[:, 0],
                               rtol=1e-12)


# ------------------------------------------------------------ a huge spike stays local
@pytest.mark.parametrize("combine", ["sum", "max"])
@pytest.mark.parametrize("rule", POINT_RULES)
@pytest.mark.parametrize("kind", ["default", "pca"])
def test_a_huge_spike_changes_only_the_rows_whose_windows_cover_it(stream, kind, rule, combine):
    detector = _detector(kind, point_rule=rule, combine=combine).fit(stream.iloc[:300])
    test = stream.iloc[300:].reset_index(drop=True)
    spiked = test.copy()
    spiked.iloc[100, 1] = 1e8
    before, after = detector.score_samples(test), detector.score_samples(spiked)
    outside = np.ones(len(test), dtype=bool)
    outside[100 - WIDTH + 1:100 + WIDTH] = False  # rows sharing a window with row 100
    np.testing.assert_allclose(after[outside], before[outside], rtol=1e-9, atol=0)
    assert after[100] < before[100]  # and the spike itself is flagged


# ------------------------------------------------------------ beyond float32: refused
@pytest.mark.parametrize("value", [1e39, 1e300, -1e300])
@pytest.mark.parametrize("kind", ["default", "pca"])
def test_readings_beyond_float32_are_refused_at_fit(stream, kind, value):
    train = stream.iloc[:300].copy()
    train.iloc[40, 2] = value
    with pytest.raises(DataValidationError, match=r"Channel 'sensor_2' .* at row 40 .*float32"):
        _detector(kind).fit(train)
    with pytest.raises(DataValidationError, match=r"Channel 2 \(0-based\) .* at row 40,"):
        _detector(kind).fit(train.to_numpy())


@pytest.fixture(scope="module")
def fitted(stream):
    return {kind: _detector(kind).fit(stream.iloc[:300]) for kind in ("default", "pca")}


@pytest.mark.parametrize("value", [1e39, 1e300, -1e39])
@pytest.mark.parametrize("kind", ["default", "pca"])
def test_readings_beyond_float32_are_refused_at_score(stream, fitted, kind, value):
    test = stream.iloc[300:].copy()
    test.iloc[7, 0] = value
    for method in ("score_samples", "predict", "feature_scores", "reconstruct"):
        with pytest.raises(DataValidationError, match=r"Channel 'sensor_0' .* at row 7 .*Rescale"):
            getattr(fitted[kind], method)(test)


def test_a_reading_that_overflows_float32_once_standardised_is_refused():
    rng = np.random.default_rng(0)
    tiny = pd.DataFrame({"a": rng.normal(size=200), "b": 1e-15 * (1 + 0.1 * rng.normal(size=200))})
    detector = WindowedPCA(width=WIDTH).fit(tiny)
    tiny.loc[50, "b"] = 1e30  # fits float32, but 1e46 training standard deviations off
    with pytest.raises(DataValidationError, match=r"Channel 'b' at row 50 .*standard deviations"):
        detector.score_samples(tiny)


def test_the_cli_refuses_a_reading_beyond_float32_in_one_line(stream, tmp_path):
    from aepipe.cli import cli

    path = aepipe.save(WindowedPCA(width=WIDTH).fit(stream.iloc[:300]), tmp_path / "m.aepipe")
    data = tmp_path / "stream.csv"
    bad = stream.iloc[300:].copy()
    bad.iloc[20, 1] = 1e300
    bad.to_csv(data, index=False)
    result = CliRunner().invoke(cli, ["score", "--model", str(path), "--data", str(data),
                                      "--out", str(tmp_path / "s.csv"), "--no-progress",
                                      "--chunk-size", "50"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "'sensor_1'" in lines[0] and "float32" in lines[0], lines[0]
