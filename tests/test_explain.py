"""score_frame / explain: the scoring output every interface returns."""

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from aepipe import PCADetector, explain, score_frame


def _pipeline_and_frame():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(100, 4)), columns=["temp", "flow", "rpm", "volt"])
    pipe = Pipeline([("scale", StandardScaler()), ("detector", PCADetector(n_components=2))])
    return pipe.fit(X), X


def test_top_columns_use_the_users_names_behind_a_scaler():
    pipe, X = _pipeline_and_frame()
    out = score_frame(pipe, X.head(5))
    names = set(out[["top1_column", "top2_column", "top3_column"]].to_numpy().ravel())
    assert names <= set(X.columns)
    assert set(explain(pipe, X.head(5))["top1_column"]) <= set(X.columns)


def test_score_frame_matches_the_detector():
    pipe, X = _pipeline_and_frame()
    out = score_frame(pipe, X)
    np.testing.assert_allclose(out["anomaly_score"], -pipe.score_samples(X))
    np.testing.assert_array_equal(out["predicted_anomaly"], pipe.predict(X) == -1)
    assert list(out.index) == list(X.index)


def test_score_frame_keeps_rows_when_the_index_repeats_labels():
    pipe, X = _pipeline_and_frame()
    repeated = pd.concat([X.head(6), X.head(6)])  # labels 0..5 twice
    out = score_frame(pipe, repeated)
    assert len(out) == 12 and list(out.index) == list(repeated.index)
    unique = score_frame(pipe, repeated.reset_index(drop=True))
    np.testing.assert_array_equal(out.to_numpy(), unique.to_numpy())
