"""Shared base of every aepipe detector: input handling and the outlier contract.

Subclasses implement four hooks on the *encoded* matrix (standardised
Gaussian columns, 0/1 Bernoulli columns, one-hot categorical groups):

- ``_fit_encoded(Z)``               learn the model;
- ``_column_scores(Z)``               NLL per original column, (n, n_columns);
- ``_encode_latent(Z)``             latent codes, (n, n_components);
- ``_decode_latent(H)``             mean of p(x|h) in the encoded space.

Everything a user calls (``score_samples``, ``predict``, ``feature_scores``,
``transform``, ``reconstruct`` ...) is written once here on top of them.
"""

from __future__ import annotations

import logging
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

from .._compat import Interval, StrOptions, validate_data
from .._tabular import (
    TabularLayout,
    _numeric_column,
    as_frame,
    check_column_names,
    check_finite_column,
    needs_tabular_layout,
)
from ..exceptions import DataValidationError

logger = logging.getLogger(__name__)

# contamination="auto": Tukey's boxplot fence, Q3 + 1.5 * IQR of the training
# anomaly scores. Reconstruction NLLs are right-skewed (sums of squares), so a
# symmetric median +/- k*MAD rule flags far too many normal records.
AUTO_FENCE_IQR = 1.5


class OutlierContractMixin:
    """scikit-learn's outlier-detector contract on top of ``anomaly_score`` and ``offset_``.

    Shared by the tabular detectors (one score per record) and the windowed
    ones (one score per timestamp).
    """

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


class BaseDetector(OutlierContractMixin, OutlierMixin, ClassNamePrefixFeaturesOutMixin,
                   TransformerMixin, BaseEstimator):
    """Base class for aepipe detectors (not for direct use).

    Input handling is shared by every tabular detector: see
    :mod:`aepipe._tabular` for what a cell may hold (numbers -- including
    ``decimal.Decimal`` -- booleans and categories; dates and cells holding
    several values are refused) and which column names work (unique; in
    mixed-type tables strings or integers, compared as given).
    """

    _parameter_constraints: dict = {
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "feature_types": [dict, None],
        "standardize": ["boolean"],
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
                    allow_missing=allow_missing,
                )
            return self.layout_.encode(frame, allow_missing=allow_missing)

        if isinstance(X, (str, bytes)) or (isinstance(X, dict) and not hasattr(X, "tocsr")):
            raise DataValidationError(
                f"Expected a table (a DataFrame or a 2-D array of shape (n_samples, "
                f"n_features)), got {type(X).__name__}; e.g. wrap a dict of columns in "
                "pandas.DataFrame(...)."
            )
        if isinstance(X, pd.DataFrame):
            _check_numeric_frame(X, allow_missing)
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
                values, names=names, standardize=self.standardize
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
    def _fit(self, X):
        """Validate, learn the model, then set ``offset_`` from training scores."""
        Z = self._validate_input(X, reset=True)
        self._fit_encoded(Z)
        self.offset_ = self._offset_from(-self._anomaly_score_encoded(Z))
        return self

    def _offset_from(self, train_scores: np.ndarray) -> float:
        if self.contamination == "auto":
            q1, q3 = np.percentile(-train_scores, [25, 75])
            return float(-(q3 + AUTO_FENCE_IQR * (q3 - q1)))
        return float(np.percentile(train_scores, 100.0 * self.contamination))

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
        """Per-column reconstruction NLL (higher = that column is more anomalous).

        A categorical column's one-hot group counts as one column, so the
        frame has the input's columns; each row sums to ``anomaly_score``.

        Returns
        -------
        scores : DataFrame of shape (n_samples, n_features)
            Indexed like ``X`` when ``X`` is a DataFrame.
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
