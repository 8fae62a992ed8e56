"""Shared base of every aepipe detector: input handling and the outlier contract.

Subclasses implement four hooks on the *encoded* matrix (standardised
Gaussian columns, 0/1 Bernoulli columns, one-hot categorical groups):

- ``_fit_encoded(Z)``               learn the model;
- ``_column_scores(Z)``               NLL per original column, (n, n_columns);
- ``_encode_latent(Z)``             latent codes, (n, n_components);
- ``_decode_latent(H)``             mean of p(x|h) in the encoded space.

Everything a user calls (``score_samples``, ``predict``, ``feature_scores``,
``transform``, ``reconstruct`` ...) is written once here on top of them,
including the training calibration that makes per-column contributions
comparable across columns (:class:`CalibratedContributionsMixin`, shared
with the windowed detectors).
"""

from __future__ import annotations

import logging
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    OutlierMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_array, check_is_fitted

from .._compat import HasMethods, Interval, StrOptions, _fit_context, validate_data
from .._saved_state import SavedStateMixin
from .._tabular import (
    TabularLayout,
    _numeric_column,
    as_frame,
    check_column_names,
    check_finite_column,
    needs_tabular_layout,
    refuse_id_columns,
)
from ..exceptions import DataValidationError
from ..scoring._explain import column_surprise, fit_column_surprise
from ..thresholds import (
    BaseThreshold,
    ContaminationThreshold,
    TukeyFenceThreshold,
    make_threshold,
)
from ..thresholds._thresholds import _NAMED as THRESHOLD_NAMES

logger = logging.getLogger(__name__)

# contamination="auto": Tukey's boxplot fence, Q3 + 1.5 * IQR of the training
# anomaly scores (TukeyFenceThreshold's default factor).
AUTO_FENCE_IQR = 1.5
# Each column's training score distribution is learnt from at most this many records
# (evenly spaced): enough for the 1-in-1,000 quantiles, one extra scoring pass at most.
_CALIBRATION_ROWS = 20_000
# ... and only from the records the detector deems normal at fit, when there are this many.
# (pipelines/benchmark_explain.py, half A: with the training anomalies left out, a pure-noise
# column leads normal records significantly more often than 2/d in 2 tables of 23 instead
# of 5, for the default detector; hit@1 unchanged.)
_MIN_CALIBRATION_ROWS = 10


class OutlierContractMixin:
    """scikit-learn's outlier-detector contract on top of ``anomaly_score`` and ``offset_``.

    Shared by the tabular detectors (one score per record) and the windowed
    ones (one score per timestamp), and so is how the alarm limit is adopted
    (:meth:`_set_threshold`).
    """

    def _set_threshold(self, threshold) -> None:
        """Adopt a fitted threshold: ``threshold_object_``, ``threshold_``, then ``offset_``.

        ``offset_ = -threshold_``, so an alarm (``decision_function < 0``) is an
        anomaly score above ``threshold_``, as in the threshold's own ``predict``.
        ``offset_`` is set last: it marks a detector as fitted.
        """
        self.threshold_object_ = threshold
        self.threshold_ = float(threshold.threshold_)
        self.offset_ = -self.threshold_

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Log-likelihood under the model (higher = more normal), ``-anomaly_score(X)``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return -self.anomaly_score(X)

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers (alarms).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: ArrayLike) -> np.ndarray:
        """-1 for outliers (alarms), +1 for inliers.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return np.where(self.decision_function(X) < 0, -1, 1)


class CalibratedContributionsMixin:
    """Per-column contributions measured against each column's own training scores.

    A detector's raw per-column scores (``feature_nll``: each column's
    negative log-likelihood, or its share of a PCA statistic) add up to the
    anomaly score but do not compare across columns: a high-entropy category
    or a noisy measurement costs more than a precise column on every record.
    At fit time the distribution of every column's raw score over the
    training records the detector deems normal is stored (``feature_quantiles_``,
    ``feature_quantile_levels_``, ``feature_tail_scale_``), and
    ``feature_scores`` reports each column's *surprise* against it:
    ``-ln`` of the share of training records whose score in that column is
    at least the record's (``aepipe/scoring/_explain.py``; docs/explanations.md).
    Shared by the tabular and the windowed detectors.
    """

    def _score_units_per_nat(self):
        """One nat of a column's NLL in the units of its per-column scores, or None.

        The column calibration's exponential tail is shrunk towards it
        (:func:`~aepipe.scoring._explain.fit_column_surprise`'s ``tail_prior``).
        Only a likelihood with each column's noise fitted (the ensemble's) has
        a nat as its columns' natural tail scale; None -- the unit-variance
        NLL of ``Autoencoder`` and ``PCADetector``, whose tail scale is the
        column's residual variance, and the windowed mean squared errors --
        keeps the mean exceedance alone.
        """
        return None

    def _fit_feature_calibration(self, train_scores: np.ndarray, observed=None) -> None:
        calibration = fit_column_surprise(train_scores, observed,
                                          tail_prior=self._score_units_per_nat())
        self.feature_quantile_levels_ = calibration["levels"]
        self.feature_quantiles_ = calibration["quantiles"]
        self.feature_tail_scale_ = calibration["tail_scale"]

    def _calibrated(self, raw: np.ndarray, observed=None) -> np.ndarray:
        """``raw`` per-column scores as surprises; the raw scores for an uncalibrated model."""
        if getattr(self, "feature_quantiles_", None) is None:
            warnings.warn(
                f"This {type(self).__name__} has no training calibration of its per-column "
                "scores (it was saved by an aepipe without one, or its training stopped early): "
                "feature_scores and explanations fall back to the raw per-column NLL, which "
                "is not comparable across columns. Fit the model again to calibrate them.",
                UserWarning, stacklevel=3)
            return raw
        return column_surprise(raw, self.feature_quantile_levels_, self.feature_quantiles_,
                               self.feature_tail_scale_, observed)

    def _check_loaded_state(self) -> None:
        """After aepipe.load (aepipe/_saved_state.py): the calibration is whole and consistent."""
        names = ("feature_quantile_levels_", "feature_quantiles_", "feature_tail_scale_")
        present = [name for name in names if getattr(self, name, None) is not None]
        if not present:
            return
        if len(present) != len(names):
            raise ValueError(f"the config holds only part of the column calibration ({present})")
        levels, quantiles, tail = (np.asarray(getattr(self, name)) for name in names)
        if levels.ndim != 1 or tail.ndim != 1 or quantiles.shape != (len(levels), len(tail)):
            raise ValueError(f"the column calibration has inconsistent shapes {levels.shape}, "
                             f"{quantiles.shape} and {tail.shape}")


# The parameters of gradient training: only the neural detectors take them (the others
# drop them from SharedParameters' constraints with ``without``).
TRAINING_PARAMETERS = ("learning_rate", "weight_decay", "batch_size", "max_epochs",
                       "early_stopping", "validation_fraction", "patience", "device",
                       "verbose")


class SharedParameters:
    """Constructor parameters that more than one detector family takes, declared once.

    ``_parameter_constraints`` holds the allowed values of every parameter
    shared by the tabular and the windowed detectors (the alarm limit,
    standardisation, missing values, randomness and the training of the
    neural ones). A detector inherits them with
    ``{**Parent._parameter_constraints, ...}`` and drops those it does not
    take (:func:`without`), the way scikit-learn's ``LocalOutlierFactor``
    inherits ``NeighborsBase``'s constraints and pops ``radius``. A family's
    own shared parameters (the windowed detectors' ``width``, ..., the
    tabular ones' ``contamination`` and ``feature_types``) are declared the
    same way, once, in its base class.

    ``__init__`` stores, unchanged, the parameters a detector passes to it:
    each detector's ``__init__`` keeps its full explicit signature (what
    ``get_params`` reads), passes the parameters its base classes declare
    to ``super().__init__`` and assigns only those it declares itself.
    """

    _parameter_constraints: dict = {
        # None: a tabular detector's alarm limit comes from its ``contamination``.
        "threshold": [None, StrOptions(set(THRESHOLD_NAMES)), HasMethods(["fit", "predict"])],
        "standardize": ["boolean"],
        "handle_missing": [StrOptions({"error", "mask"})],
        "random_state": ["random_state"],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "verbose": ["verbose"],
    }

    def __init__(self, **parameters):
        for name, value in parameters.items():
            setattr(self, name, value)


def without(constraints: dict, *names: str) -> dict:
    """``constraints`` less ``names``: a detector's share of its base class's parameters."""
    missing = set(names) - set(constraints)
    if missing:
        raise KeyError(f"{sorted(missing)} are not declared by the base class.")
    return {name: rule for name, rule in constraints.items() if name not in names}


def check_size(name: str, value) -> int:
    """``value`` as an int when it is an integer >= 1 (not a bool), else a ValueError.

    For size parameters (widths, code sizes): 8.5 or "8" must not be truncated
    or parsed into a network of another shape without a word.
    """
    if isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)) and value >= 1:
        return int(value)
    raise ValueError(f"{name}={value!r} must be an integer >= 1.")


def check_sizes(name: str, values) -> tuple[int, ...]:
    """A tuple/list of sizes as ints, each checked as in :func:`check_size`."""
    sizes = []
    for position, value in enumerate(values):
        try:
            sizes.append(check_size(name, value))
        except ValueError:
            raise ValueError(
                f"{name}={values!r} must contain positive integers (whole numbers >= 1); "
                f"got {value!r} at position {position}. Use e.g. {name}=(64, 32)."
            ) from None
    return tuple(sizes)


class BaseDetector(SavedStateMixin, SharedParameters, CalibratedContributionsMixin,
                   OutlierContractMixin, OutlierMixin, ClassNamePrefixFeaturesOutMixin,
                   TransformerMixin, BaseEstimator):
    """Base class for aepipe detectors (not for direct use).

    Input handling is shared by every tabular detector: see
    :mod:`aepipe._tabular` for what a cell may hold (numbers -- including
    ``decimal.Decimal`` -- booleans and categories; dates and cells holding
    several values are refused) and which column names work (unique; in
    mixed-type tables strings or integers, compared as given).

    The alarm limit: ``threshold`` (a name or an object of
    :mod:`aepipe.thresholds`, fitted on the training anomaly scores) when
    given, else the one ``contamination`` stands for -- a float ``c``:
    :class:`~aepipe.thresholds.ContaminationThreshold` ``(c)``; ``"auto"``:
    :class:`~aepipe.thresholds.TukeyFenceThreshold` ``()``. Both given is an
    error unless ``contamination`` keeps its default ``"auto"``. After fit,
    ``threshold_object_`` is the fitted threshold, ``threshold_`` its limit
    on :meth:`anomaly_score` and ``offset_ = -threshold_``.
    """

    # A categorical column with more categories than this is encoded by index, not
    # one-hot (TabularLayout.from_frame); None: always one-hot (e.g. for PCA).
    _max_one_hot: int | None = None

    _parameter_constraints: dict = {
        **SharedParameters._parameter_constraints,
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "feature_types": [dict, None],
        "handle_unknown": [StrOptions({"error", "score"})],
        "forgetting": [Interval(Real, 0, 1, closed="left")],
    }

    # ------------------------------------------------------------ input
    def _check_feature_types(self, X):
        """``feature_types`` with integer keys mapped to array column names."""
        if not self.feature_types:
            return None
        declared = {}
        for key, kind in self.feature_types.items():
            if isinstance(key, (int, np.integer)) and not isinstance(X, pd.DataFrame):
                key = f"x{key}"
            declared[key] = kind
        return declared

    def _validate_input(self, X, *, reset: bool) -> np.ndarray:
        """Validate X and return the encoded float32 matrix.

        With ``handle_missing="mask"`` missing entries stay NaN in it (the
        mask); a record with no observed entry is an error.
        """
        Z = self._validate_and_encode(X, reset=reset)
        if getattr(self, "handle_missing", "error") == "mask" and len(Z):
            empty = ~self.layout_.observed(Z).any(axis=1)
            if empty.any():
                row = int(np.flatnonzero(empty)[0])
                raise DataValidationError(
                    f"Row {row} has no observed value (every column is missing); there is "
                    "nothing to score or learn from. Drop rows that are entirely missing."
                )
        return Z

    def _validate_and_encode(self, X, *, reset: bool) -> np.ndarray:
        allow_missing = getattr(self, "handle_missing", "error") == "mask"
        if isinstance(X, pd.DataFrame):
            check_column_names(X, mixed=False)
        if reset:
            feature_types = self._check_feature_types(X)
            tabular = needs_tabular_layout(X, feature_types)
        else:
            tabular = not self.layout_.numeric_only
        if tabular:
            if hasattr(X, "__sklearn_tags__") or not hasattr(X, "__len__"):
                raise DataValidationError(f"Expected a table, got {type(X).__name__}.")
            if isinstance(X, pd.DataFrame):
                check_column_names(X, mixed=True)
            validate_data(self, X, reset=reset, skip_check_array=True)
            names = self._array_names(X) if reset else self.layout_.names
            frame = as_frame(X, None if isinstance(X, pd.DataFrame) else names)
            if len(frame) == 0:
                raise DataValidationError(
                    f"Found an empty table (shape={frame.shape}); at least one row is required."
                )
            if reset:
                self.layout_ = TabularLayout.from_frame(
                    frame, feature_types=feature_types, standardize=self.standardize,
                    allow_missing=allow_missing, max_one_hot=self._max_one_hot,
                )
            # handle_unknown="score": unseen categories are scored (encoded -1), never fitted.
            allow_unknown = not reset and getattr(self, "handle_unknown", "error") == "score"
            return self.layout_.encode(frame, allow_missing=allow_missing,
                                       allow_unknown=allow_unknown)

        if isinstance(X, (str, bytes)) or (isinstance(X, dict) and not hasattr(X, "tocsr")):
            raise DataValidationError(
                f"Expected a table (a DataFrame or a 2-D array of shape (n_samples, "
                f"n_features)), got {type(X).__name__}; e.g. wrap a dict of columns in "
                "pandas.DataFrame(...)."
            )
        if isinstance(X, pd.DataFrame):
            _check_numeric_frame(X, allow_missing)
            if reset:
                refuse_id_columns(X)
        try:
            values = validate_data(
                self, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False,
                ensure_min_samples=1,
            )
        except ValueError:
            if getattr(getattr(X, "dtype", None), "kind", None) in ("O", "U", "S") and (
                    np.ndim(X) == 2):
                # Name the column and row of the first entry that is not a number.
                names = self.layout_.names if not reset else self._array_names(X)
                for j in range(np.shape(X)[1]):
                    _numeric_column(pd.Series(np.asarray(X)[:, j]), names[j], allow_missing)
            raise
        names = self._array_names(values) if reset else self.layout_.names
        bad_values = ~np.isfinite(values)
        if allow_missing:
            bad_values &= ~np.isnan(values)
        if bad_values.any():
            bad_column = int(np.argwhere(bad_values)[0][1])
            index = X.index if isinstance(X, pd.DataFrame) else None
            check_finite_column(values[:, bad_column], names[bad_column], index,
                                allow_missing=allow_missing)
        if reset:
            self.layout_ = TabularLayout.from_array(
                values, names=names, standardize=self.standardize,
                dtypes=list(X.dtypes) if isinstance(X, pd.DataFrame) else None,
            )
        return self.layout_.encode(values, allow_missing=allow_missing)

    def _array_names(self, X) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        return [f"x{j}" for j in range(np.shape(X)[1])]

    def _check_latent(self, H) -> np.ndarray:
        H = check_array(H, dtype=[np.float64, np.float32])
        if H.shape[1] != self._n_features_out:
            raise DataValidationError(
                f"inverse_transform got codes with {H.shape[1]} columns, but "
                f"{type(self).__name__} has {self._n_features_out} latent dimensions."
            )
        return H.astype(np.float32)

    # ------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model on X, then the alarm threshold on the training scores.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or None
            Labels (1 = anomaly); used only by ``threshold="best_f1"`` (training
            itself is unsupervised).

        Returns
        -------
        self : object
        """
        return self._fit(X, y)

    def _fit(self, X, y=None):
        """Validate, learn the model, then fit the threshold on the training scores.

        ``y`` (1 = anomaly) reaches only the threshold (``threshold="best_f1"``).
        """
        # A conflicting threshold/contamination or a bad threshold fails before training.
        self._alarm_threshold()._validate_params()
        Z = self._validate_input(X, reset=True)
        if y is not None:
            y = np.asarray(y).ravel()
        self._fit_encoded(Z)
        train_scores = self._anomaly_score_encoded(Z)
        threshold = self._fitted_threshold(train_scores, y)
        self._fit_feature_calibration_encoded(Z, inliers=train_scores <= threshold.threshold_)
        self._set_threshold(threshold)
        return self

    # ------------------------------------------------------------ threshold
    def _alarm_threshold(self) -> BaseThreshold:
        """The unfitted threshold: ``threshold``, or the one ``contamination`` stands for."""
        threshold = getattr(self, "threshold", None)  # None in models pickled before it
        if threshold is None:
            if self.contamination == "auto":
                return TukeyFenceThreshold(factor=AUTO_FENCE_IQR)
            return ContaminationThreshold(contamination=self.contamination)
        if self.contamination != "auto":
            raise ValueError(
                f"threshold={threshold!r} and contamination={self.contamination!r} both "
                "set the alarm limit; give one of them (contamination=c is the shorthand for "
                "threshold=ContaminationThreshold(contamination=c))."
            )
        return make_threshold(threshold)

    def _fitted_threshold(self, anomaly_scores: np.ndarray, y=None) -> BaseThreshold:
        """A fresh :meth:`_alarm_threshold` fitted on training anomaly scores."""
        return self._alarm_threshold().fit(anomaly_scores, y)

    def _fit_feature_calibration_encoded(self, Z: np.ndarray, inliers=None) -> None:
        """Learn each column's score distribution on the training records (at most 20,000).

        ``inliers``: the records the detector itself deems normal at fit; the
        calibration uses only them (when there are at least 10), so the anomalies
        in the training data do not widen what counts as typical for a column.
        """
        self.feature_constants_ = self._column_constants(Z)
        if inliers is not None and np.count_nonzero(inliers) >= _MIN_CALIBRATION_ROWS:
            Z = Z[inliers]
        if len(Z) > _CALIBRATION_ROWS:
            Z = Z[np.linspace(0, len(Z) - 1, _CALIBRATION_ROWS).astype(int)]
        self._fit_feature_calibration(self._column_scores(Z), self._observed_columns(Z))

    def _column_constants(self, Z: np.ndarray) -> np.ndarray:
        """Per original column, its one encoded value when it took only one in ``Z``, else NaN.

        Only columns encoded in one position (numbers, booleans, a category
        with one level) can be; missing entries are ignored.
        """
        columns = self.layout_.columns
        values = Z[:, [c.start for c in columns]].astype(np.float64)
        single = np.array([c.stop - c.start == 1 for c in columns], dtype=bool)
        observed = ~np.isnan(values)
        with np.errstate(invalid="ignore"):
            low = np.where(observed, values, np.inf).min(axis=0, initial=np.inf)
            high = np.where(observed, values, -np.inf).max(axis=0, initial=-np.inf)
        return np.where(single & (low == high), low, np.nan)

    def _at_training_constant(self, Z: np.ndarray):
        """Boolean (n_samples, n_columns): entries holding their column's only training value.

        None for a model fitted before these were recorded.
        """
        constants = getattr(self, "feature_constants_", None)
        if constants is None:
            return None
        return Z[:, [c.start for c in self.layout_.columns]] == constants

    def _require_mask(self, method: str) -> None:
        """Refuse ``method`` on a model not fitted with ``handle_missing="mask"``."""
        if getattr(self, "handle_missing", "error") != "mask":
            raise ValueError(
                f"{method} needs handle_missing='mask'; this {type(self).__name__} was fitted "
                f"with handle_missing={getattr(self, 'handle_missing', 'error')!r}."
            )

    def _observed_columns(self, Z: np.ndarray):
        """Which columns of each encoded record are observed; None when none can be missing."""
        if getattr(self, "handle_missing", "error") != "mask":
            return None
        return self.layout_.observed(Z)

    def _offset_from(self, train_scores: np.ndarray) -> float:
        """The ``offset_`` a fresh threshold fitted on ``train_scores`` (score_samples) gives."""
        return -self._fitted_threshold(-train_scores).threshold_

    # ------------------------------------------------------------ scores
    def anomaly_score(self, X: ArrayLike) -> np.ndarray:
        """Anomaly score of each record (higher = more anomalous).

        The reconstruction negative log-likelihood, i.e. ``-score_samples(X)``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self._anomaly_score_encoded(self._validate_input(X, reset=False))

    def _anomaly_score_encoded(self, Z: np.ndarray) -> np.ndarray:
        return self._column_scores(Z).sum(axis=1)

    def feature_scores(self, X: ArrayLike) -> pd.DataFrame:
        """How unusual each column of each record is, on one scale for all columns.

        Each column's reconstruction NLL measured against the same column's
        NLL on the training records (those the detector deems normal at
        fit): ``-ln`` of the share of them whose NLL in that column is at
        least this record's (beyond
        the 90th percentile, an exponential tail fitted at fit time, so
        values past anything seen keep growing). 0: as typical as that
        column gets; ``ln 10 = 2.3``: that column's 90th percentile;
        ``ln 100 = 4.6``: its 99th. On records like the training ones every
        column scores alike (Exp(1)), so a high-entropy category or a noisy
        column does not lead the explanation by default. This is what
        :func:`~aepipe.scoring.explain`, :func:`~aepipe.scoring.score_frame`
        and the CLI report. A categorical column's one-hot group counts as
        one column; a missing entry (``handle_missing="mask"``) scores 0, and
        so does a column that held one value on every training record while
        it holds that value (``feature_constants_``).

        The contributions do not add up to ``anomaly_score``: the additive
        per-column terms of the score are :meth:`feature_nll`.

        Returns
        -------
        scores : DataFrame of shape (n_samples, n_features)
            Non-negative; indexed like ``X`` when ``X`` is a DataFrame.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from aepipe import PCADetector
        >>> rng = np.random.default_rng(0)
        >>> f = rng.normal(size=500)
        >>> X = pd.DataFrame({"a": f + 0.1 * rng.normal(size=500),
        ...                   "b": 2 * f + 0.2 * rng.normal(size=500),
        ...                   "c": -f + 0.1 * rng.normal(size=500),
        ...                   "noise": 5 * rng.normal(size=500)})
        >>> det = PCADetector(n_components=1).fit(X)
        >>> normal = X.iloc[:200]
        >>> det.feature_nll(normal).idxmax(axis=1).value_counts().idxmax()  # raw: noise leads
        'noise'
        >>> bool(det.feature_scores(normal).idxmax(axis=1).value_counts(normalize=True).max()
        ...      < 0.3)
        True
        >>> broken = X.head(3).assign(b=X["b"].head(3) + 1.0)  # b leaves its relation to a, c
        >>> det.feature_scores(broken).idxmax(axis=1).tolist()
        ['b', 'b', 'b']
        """
        check_is_fitted(self)
        Z = self._validate_input(X, reset=False)
        surprise = self._calibrated(self._column_scores(Z), self._observed_columns(Z))
        at_constant = self._at_training_constant(Z)
        if at_constant is not None:
            # A column constant in training, at that value, is no reason: what its NLL
            # varies by there is the model's rounding around the constant.
            surprise = np.where(at_constant, 0.0, surprise)
        return self.layout_.column_frame(surprise, like=X)

    def feature_nll(self, X: ArrayLike) -> pd.DataFrame:
        """Per-column reconstruction NLL: the additive terms of the anomaly score.

        A categorical column's one-hot group counts as one column, so the
        frame has the input's columns; each row sums to ``anomaly_score``
        (for :class:`AutoencoderEnsemble` plus its ``latent_score``). Not
        comparable across columns -- a high-entropy or noisy column costs
        more on every record -- so use :meth:`feature_scores` to ask which
        column made a record anomalous.

        Returns
        -------
        scores : DataFrame of shape (n_samples, n_features)
            Indexed like ``X`` when ``X`` is a DataFrame.

        Examples
        --------
        >>> import numpy as np
        >>> from aepipe import PCADetector
        >>> X = np.random.default_rng(0).normal(size=(100, 3))
        >>> det = PCADetector(n_components=1).fit(X)
        >>> bool(np.allclose(det.feature_nll(X).sum(axis=1), det.anomaly_score(X)))
        True
        """
        check_is_fitted(self)
        return self.layout_.column_frame(
            self._column_scores(self._validate_input(X, reset=False)), like=X
        )


    # ------------------------------------------------------------ transformer
    def transform(self, X: ArrayLike) -> np.ndarray:
        """Latent codes of X.

        Returns
        -------
        codes : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        return self._encode_latent(self._validate_input(X, reset=False)).astype(np.float64)

    def inverse_transform(self, X: ArrayLike):
        """Decode latent codes to the input space (the mean of p(x|h)).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, e.g. from :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features), or a DataFrame
            for models fitted on mixed-type tables.
        """
        check_is_fitted(self)
        return self.layout_.decode(self._decode_latent(self._check_latent(X)))

    def reconstruct(self, X: ArrayLike):
        """Denoised reconstruction of X: the mean of p(x|h(x)), in X's units.

        Returns
        -------
        X_reconstructed : ndarray or DataFrame like ``X``
            A DataFrame (same columns and index) when ``X`` is one.
        """
        check_is_fitted(self)
        Z = self._validate_input(X, reset=False)
        return self.layout_.decode(self._decode_latent(self._encode_latent(Z)), like=X)

    def __sklearn_is_fitted__(self) -> bool:
        # offset_ is set last in fit: a fit that failed part-way (e.g. a
        # training that diverged before a good epoch) leaves no offset_.
        return hasattr(self, "offset_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = getattr(self, "handle_missing", "error") == "mask"
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags


def _check_numeric_frame(X: pd.DataFrame, allow_missing: bool = False) -> None:
    """Name the column and row of the first non-numeric entry of a numeric frame."""
    from .._tabular import _numeric_column

    for name in X.columns:
        series = X[name]
        if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(
            series.dtype
        ):
            _numeric_column(series, name, allow_missing)
