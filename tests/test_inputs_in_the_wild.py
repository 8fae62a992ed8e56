"""Tables as users really have them: odd column names, indexes, cells, values and sizes.

Each case is either handled (scored like the equivalent plain table) or
refused with a DataValidationError that names the column, row or value and
says how to fix it.
"""

import datetime
import decimal

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aepipe import Autoencoder, PCADetector, make_default_detector
from aepipe.exceptions import DataValidationError

torch.set_num_threads(1)

FAST = dict(max_epochs=1, batch_size=32, random_state=0)
PROPERTY = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

MAKERS = {
    "autoencoder": lambda: Autoencoder(**FAST),
    "default": lambda: make_default_detector(n_estimators=2, training_steps=4, random_state=0),
    "pca": lambda: PCADetector(n_components=1),
}
DETECTORS = pytest.mark.parametrize("make", list(MAKERS.values()), ids=list(MAKERS))


def _mixed(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": x + 0.1 * rng.normal(size=n),
                         "shop": rng.choice(["a", "b", "c"], size=n).astype(object),
                         "flag": rng.random(n) < 0.5})


def _scores(detector, X):
    return detector.anomaly_score(X)


# ----------------------------------------------------------------- 1. duplicate names
@DETECTORS
@pytest.mark.parametrize("table", ["numeric", "mixed"])
def test_duplicated_column_names_are_refused(make, table):
    X = _mixed()
    if table == "numeric":
        X = X[["x", "y"]]
    X = X.set_axis(["x", *X.columns[1:-1], "x"], axis=1)
    with pytest.raises(DataValidationError,
                       match=r"duplicated column names \['x'\].*Rename them"):
        make().fit(X)


def test_duplicated_column_names_are_refused_when_scoring():
    X = _mixed()
    detector = PCADetector(n_components=1).fit(X)
    with pytest.raises(DataValidationError, match=r"duplicated column names \['shop'\]"):
        detector.anomaly_score(X.set_axis(["x", "shop", "shop", "flag"], axis=1))


# ----------------------------------------------------------------- 2. column names
@DETECTORS
def test_integer_column_names_of_a_mixed_frame_are_compared_as_given(make):
    named = _mixed()
    numbered = named.set_axis([10, 0, 2, 1], axis=1)
    detector = make().fit(numbered)
    # The same model as on string names: names change nothing but the labels.
    np.testing.assert_array_equal(_scores(detector, numbered),
                                  _scores(make().fit(named), named))
    assert list(detector.feature_scores(numbered).columns) == [10, 0, 2, 1]
    assert list(detector.reconstruct(numbered).columns) == [10, 0, 2, 1]
    # Columns are matched by name, not position.
    np.testing.assert_array_equal(_scores(detector, numbered[[2, 1, 10, 0]]),
                                  _scores(detector, numbered))


@given(names=st.lists(st.integers(-10**6, 10**6), min_size=4, max_size=4, unique=True))
@PROPERTY
def test_any_unique_integer_names_score_like_string_names(names):
    named = _mixed()
    numbered = named.set_axis(names, axis=1)
    detector = PCADetector(n_components=1).fit(numbered)
    np.testing.assert_array_equal(
        _scores(detector, numbered),
        _scores(PCADetector(n_components=1).fit(named), named))
    assert list(detector.feature_scores(numbered).columns) == names


def test_a_missing_integer_named_column_is_named():
    numbered = _mixed().set_axis([0, 1, 2, 3], axis=1)
    detector = PCADetector(n_components=1).fit(numbered)
    with pytest.raises(DataValidationError,
                       match=r"X has no column 3, which the model was fitted on.*0 and '0'"):
        detector.anomaly_score(numbered.set_axis([0, 1, 2, 4], axis=1))


@pytest.mark.parametrize("columns, message", [
    (pd.MultiIndex.from_tuples([("g", "x"), ("g", "y"), ("h", "shop"), ("h", "flag")]),
     r"MultiIndex columns \(2 levels, e\.g\. \('g', 'x'\)\).*'_'\.join"),
    (pd.Index([("g", 1), ("g", 2), ("h", 3), ("h", 4)], tupleize_cols=False),
     r"column name \('g', 1\) of type tuple.*X\.columns\.astype\(str\)"),
    ([0.5, 1.5, 2.5, 3.5], r"column name 0\.5 of type float.*astype\(str\)"),
    (["x", "y", 2, "flag"], r"mixes string and non-string column names \(e\.g\. 2 of type int\)"),
])
def test_unusable_column_names_of_a_mixed_frame_are_refused(columns, message):
    with pytest.raises(DataValidationError, match=message):
        PCADetector(n_components=1).fit(_mixed().set_axis(columns, axis=1))


# ----------------------------------------------------------------- 3. any index
INDEX_LABELS = st.one_of(st.integers(0, 3), st.sampled_from(["a", "b", 1.5]), st.none())


@given(labels=st.lists(INDEX_LABELS, min_size=24, max_size=24))
@PROPERTY
def test_scores_do_not_depend_on_the_index(labels):
    X = _mixed()
    X["amount"] = pd.Series(X["x"].round(2).to_numpy(), dtype=object)  # numbers as objects
    odd = X.set_axis(pd.Index(labels, dtype=object), axis=0)
    detector = PCADetector(n_components=2).fit(odd)
    np.testing.assert_array_equal(_scores(detector, odd),
                                  _scores(PCADetector(n_components=2).fit(X), X))
    assert detector.feature_scores(odd).index.equals(odd.index)


@DETECTORS
def test_every_row_is_scored_with_a_non_unique_index(make):
    X = _mixed().set_axis([0, 1] * 12, axis=0)
    scores = make().fit(X).anomaly_score(X)
    assert scores.shape == (24,) and np.isfinite(scores).all()


def test_errors_name_row_positions_with_a_non_unique_index():
    X = _mixed().set_axis([0, 0, 1, 1] * 6, axis=0)
    X["amount"] = pd.Series([1.5] * 23 + ["n/a"], dtype=object, index=X.index)
    with pytest.raises(DataValidationError,
                       match=r"Column 'amount' mixes numbers.*'n/a' at row 23 \(index 1\)"):
        PCADetector(n_components=1).fit(X)


# ----------------------------------------------------------------- 4. lists, dicts, sets
CONTAINERS = st.sampled_from([[1, 2], {"k": 1}, {3}, ("a", 1), np.arange(2)])


@given(value=CONTAINERS, row=st.integers(0, 23), declared=st.sampled_from([None, "categorical",
                                                                           "gaussian"]))
@PROPERTY
def test_cells_holding_several_values_are_refused_at_fit(value, row, declared):
    X = _mixed()
    cells = list(X["shop"] if declared != "gaussian" else X["x"])
    cells[row] = value
    X["bag"] = pd.Series(cells, dtype=object)
    kind = {"bag": declared} if declared else None
    with pytest.raises(DataValidationError,
                       match=rf"Column 'bag' has the {type(value).__name__} .* at row {row}; "
                             r"a cell must hold one number, boolean or category"):
        PCADetector(n_components=1, feature_types=kind).fit(X)


@pytest.mark.parametrize("column", ["shop", "x", "flag"])
@pytest.mark.parametrize("value", [[1, 2], {"k": 1}, {3}], ids=["list", "dict", "set"])
def test_cells_holding_several_values_are_refused_when_scoring(column, value):
    X = _mixed()
    detector = PCADetector(n_components=1).fit(X)
    X[column] = pd.Series([X[column].iloc[0]] * 5 + [value] + list(X[column].iloc[6:]),
                          dtype=object)
    with pytest.raises(DataValidationError, match=rf"Column '{column}' .* at row 5"):
        detector.anomaly_score(X)


# ----------------------------------------------------------------- 5. Decimal and dates
def test_decimal_column_is_numeric():
    X = _mixed()
    X["price"] = X["y"].round(3)
    as_decimal = X.assign(price=[decimal.Decimal(f"{v:.3f}") for v in X["price"]])
    detector = PCADetector(n_components=2).fit(as_decimal)
    np.testing.assert_array_equal(_scores(detector, as_decimal),
                                  _scores(PCADetector(n_components=2).fit(X), X))
    new = as_decimal.assign(price=[decimal.Decimal("123.456")] * len(X))
    assert (_scores(detector, new) > _scores(detector, as_decimal).max()).all()
    assert detector.reconstruct(as_decimal)["price"].dtype == np.float64


DATES = [datetime.date(2024, 3, 1), datetime.datetime(2024, 3, 1, 12), pd.Timestamp("2024-03-01"),
         datetime.time(12, 30), datetime.timedelta(days=2), np.datetime64("2024-03-01")]


@pytest.mark.parametrize("value", DATES, ids=lambda v: type(v).__name__)
def test_dates_in_object_columns_are_refused(value):
    X = _mixed()
    X["when"] = pd.Series(["unknown"] * 3 + [value] * 21, dtype=object)
    with pytest.raises(DataValidationError,
                       match=r"Column 'when' holds dates or times \(the value .* at row 3\).*"
                             r"Convert the column to numbers \(e\.g\. a timestamp, or the day "
                             r"of year.*or drop it"):
        PCADetector(n_components=1).fit(X)


def test_dates_declared_categorical_are_labels():
    X = _mixed()
    X["when"] = pd.Series([datetime.date(2024, 3, 1 + i % 3) for i in range(24)], dtype=object)
    detector = PCADetector(n_components=1, feature_types={"when": "categorical"}).fit(X)
    assert np.isfinite(detector.anomaly_score(X)).all()


# ----------------------------------------------------------------- 6. extreme integers
INT_DTYPES = ["int8", "uint8", "int16", "int32", "uint32", "int64", "uint64"]


@st.composite
def _extreme_integers(draw):
    dtype = np.dtype(draw(st.sampled_from(INT_DTYPES)))
    info = np.iinfo(dtype)
    reach = min(10**6, (int(info.max) - int(info.min)) // 4)
    near = st.one_of(st.integers(info.max - reach, info.max),
                     st.integers(info.min, info.min + reach))
    values = draw(st.lists(st.one_of(near, st.integers(info.min, info.max)),
                           min_size=24, max_size=24))
    return np.array(values, dtype=dtype)


@given(values=_extreme_integers(), mixed=st.booleans())
@PROPERTY
def test_reconstruct_of_extreme_integers_is_clipped_not_wrapped(values, mixed):
    X = _mixed()[["x", "shop"] if mixed else ["x"]].assign(count=values)
    detector = PCADetector(n_components=1).fit(X)
    reconstructed = detector.reconstruct(X)["count"]
    assert reconstructed.dtype == values.dtype
    in_float = detector.reconstruct(X.astype({"count": np.float64}))["count"].to_numpy()
    info = np.iinfo(values.dtype)
    expected = np.clip(np.rint(in_float), float(info.min), float(info.max))
    # float64 cannot hold every int64: within its spacing near the dtype's limit.
    tolerance = max(1.0, float(np.spacing(float(info.max))))
    assert np.all(np.abs(reconstructed.to_numpy(dtype=np.float64) - expected) <= tolerance)


def test_reconstruct_near_int64_max_stays_near_it():
    top = np.iinfo(np.int64).max
    X = pd.DataFrame({"x": np.arange(24.0), "big": top - np.arange(24, dtype=np.int64) * 1000})
    reconstructed = PCADetector(n_components=1).fit(X).reconstruct(X)["big"]
    assert reconstructed.dtype == np.int64
    assert (reconstructed > top - 10**6).all()


# ----------------------------------------------------------------- 7. size parameters
@pytest.mark.parametrize("hidden_sizes, bad, position", [
    ((8.5, 4), "8.5", 0), ((np.float64(8.0),), r"np.float64\(8.0\)", 0), (("8",), "'8'", 0),
    ((4, True), "True", 1), ((8, 0), "0", 1), ((-3,), "-3", 0),
])
def test_hidden_sizes_must_be_integers(hidden_sizes, bad, position):
    X = np.random.default_rng(0).normal(size=(24, 3))
    with pytest.raises(ValueError, match=rf"hidden_sizes=.* must contain positive integers "
                                         rf"\(whole numbers >= 1\); got {bad} at position "
                                         rf"{position}"):
        Autoencoder(hidden_sizes=hidden_sizes, **FAST).fit(X)


def test_integer_sizes_of_any_integer_type_are_accepted():
    X = np.random.default_rng(0).normal(size=(24, 3))
    detector = Autoencoder(hidden_sizes=(np.int64(8), 4), latent_dim=np.int32(2), **FAST).fit(X)
    assert detector.hidden_sizes_ == (8, 4) and detector.latent_dim_ == 2


def test_latent_dim_must_not_be_a_bool():
    X = np.random.default_rng(0).normal(size=(24, 3))
    with pytest.raises(ValueError, match=r"latent_dim=True must be an integer >= 1"):
        Autoencoder(latent_dim=True, **FAST).fit(X)


# ----------------------------------------------------------------- 8. tiny-scale columns
def _tiny_table(exponent, n=60, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": a + 0.05 * rng.normal(size=n),
                         "tiny": 10.0**exponent * (1 + 0.1 * rng.normal(size=n))})


def _fifty_sigma(X, exponent):
    record = X.iloc[:1].copy()
    unit = 10.0**exponent  # the squares of such values underflow: compute in units of it
    record["tiny"] = unit * ((X["tiny"] / unit).mean() + 50 * (X["tiny"] / unit).std(ddof=0))
    return record


@given(exponent=st.integers(-300, -13))
@PROPERTY
def test_a_deviation_in_a_tiny_scale_column_counts(exponent):
    X = _tiny_table(exponent)
    detector = PCADetector(n_components=1).fit(X)
    assert detector.anomaly_score(_fifty_sigma(X, exponent))[0] > detector.anomaly_score(X).max()


@DETECTORS
def test_a_deviation_in_a_tiny_scale_column_counts_for_every_detector(make):
    X = _tiny_table(-15)
    detector = make().fit(X)
    assert detector.anomaly_score(_fifty_sigma(X, -15))[0] > detector.anomaly_score(X).max()


@pytest.mark.parametrize("values", [np.zeros(24), np.full(24, 1e-15), np.full(24, 7.0),
                                    np.where(np.arange(24) % 2, 0.1, np.nextafter(0.1, 1.0))],
                         ids=["zeros", "tiny", "seven", "rounding"])
def test_constant_columns_keep_unit_scale(values):
    X = _mixed()[["x", "y"]].assign(const=values)
    assert PCADetector(n_components=1).fit(X).layout_.scale[-1] == 1.0


# ----------------------------------------------------------------- 9. one-column PCA
@pytest.mark.parametrize("statistic", ["reconstruction", "q"])
@pytest.mark.parametrize("standardize", [True, False])
def test_pca_scores_a_single_column(statistic, standardize):
    x = np.random.default_rng(0).normal(loc=5.0, scale=2.0, size=(50, 1))
    detector = PCADetector(statistic=statistic, standardize=standardize).fit(x)
    scores = detector.anomaly_score(x)
    deviation = np.abs(x[:, 0] - x[:, 0].mean())
    np.testing.assert_array_equal(np.argsort(scores, kind="stable"),
                                  np.argsort(deviation, kind="stable"))
    assert detector.anomaly_score([[x.mean() + 10 * x.std()]])[0] > scores.max()
    np.testing.assert_allclose(detector.feature_nll(x).sum(axis=1), scores)


def test_pca_scores_a_single_boolean_column():
    flags = pd.DataFrame({"flag": [True] * 45 + [False] * 5})
    detector = PCADetector().fit(flags)
    scores = detector.anomaly_score(flags)
    assert scores[-1] > scores[0]
    np.testing.assert_allclose(detector.spe(flags), 2 * scores - np.log(2 * np.pi))


@pytest.mark.parametrize("params, match", [
    ({"latent_dims": (1.5, 2), "n_estimators": 2}, "latent_dims=.*got 1.5 at position 0"),
    ({"latent_dims": (True, 2), "n_estimators": 2}, "latent_dims=.*got True at position 0"),
    ({"latent_dims": (2,), "n_estimators": 2}, "must hold n_estimators=2"),
])
def test_ensemble_sizes_must_be_integers(params, match):
    from aepipe.estimators import AutoencoderEnsemble

    X = np.random.default_rng(0).normal(size=(40, 4))
    with pytest.raises(ValueError, match=match):
        AutoencoderEnsemble(training_steps=2, random_state=0, **params).fit(X)
