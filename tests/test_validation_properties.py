"""Property tests: whatever table a user passes, outputs are finite or a ValueError says why."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aepipe import Autoencoder, PCADetector, VariationalAutoencoder

torch.set_num_threads(1)

# Arrays scored by detectors fitted on a DataFrame: sklearn's warning is expected.
pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

COLUMNS = ["a", "b", "c"]

# Entries a messy table holds: ordinary numbers, NaN, +-inf, huge and tiny values, text.
ENTRIES = st.one_of(
    st.floats(-5, 5, allow_nan=False),
    st.floats(-5, 5, allow_nan=False),
    st.floats(-5, 5, allow_nan=False),
    st.just(np.nan),
    st.sampled_from([np.inf, -np.inf, 1e30, -1e38, 1e300, 1e-300]),
    st.sampled_from(["x", "", "1.5", "nan"]),
    st.none(),
)


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(60, 3)), columns=COLUMNS)


@pytest.fixture(scope="module")
def detectors(train):
    fast = dict(max_epochs=3, batch_size=32, random_state=0)
    return [Autoencoder(**fast).fit(train), VariationalAutoencoder(**fast).fit(train),
            PCADetector(n_components=2).fit(train)]


def _messy_frame(rows):
    return pd.DataFrame(rows, columns=COLUMNS, dtype=object)


def _assert_finite_or_value_error(call):
    try:
        out = call()
    except ValueError as error:
        message = str(error)
        assert message and "Traceback" not in message
        assert "column" in message.lower() or "sample" in message.lower(), message
        return None
    values = out.to_numpy(dtype=np.float64) if isinstance(out, pd.DataFrame) else np.asarray(out)
    assert np.isfinite(values).all(), values
    return out


@PROPERTY
@given(rows=st.lists(st.lists(ENTRIES, min_size=3, max_size=3), min_size=0, max_size=6),
       as_array=st.booleans())
def test_scoring_messy_tables(detectors, rows, as_array):
    frame = _messy_frame(rows)
    X = frame.to_numpy(dtype=object) if as_array else frame
    for det in detectors:
        for method in (det.score_samples, det.feature_scores, det.transform, det.predict):
            _assert_finite_or_value_error(lambda m=method: m(X))


@PROPERTY
@given(rows=st.lists(st.lists(ENTRIES, min_size=3, max_size=3), min_size=1, max_size=12))
def test_fitting_messy_tables(rows):
    frame = _messy_frame(rows)
    for det in (Autoencoder(max_epochs=2, random_state=0), PCADetector(n_components=1)):
        fitted = _assert_finite_or_value_error(lambda d=det: d.fit(frame).score_samples(frame))
        if fitted is not None:
            assert len(fitted) == len(frame)


@PROPERTY
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64),
                       min_size=3, max_size=18).filter(lambda v: len(v) % 3 == 0))
def test_float_arrays(detectors, values):
    X = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    for det in detectors:
        _assert_finite_or_value_error(lambda d=det: d.anomaly_score(X))
        _assert_finite_or_value_error(lambda d=det: d.reconstruct(X))
