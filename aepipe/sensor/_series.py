"""One model per series: a windowed detector fitted on each series of a long-format frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.utils.validation import check_is_fitted

from .._compat import HasMethods, _fit_context, validate_data
from .._saved_state import SavedStateMixin
from ..exceptions import DataValidationError
from ._base import series_rows, split_series


class PerSeriesDetector(SavedStateMixin, OutlierMixin, BaseEstimator):
    """One detector per series of a long-format frame, each row scored by its series' model.

    For a fleet (pumps, servers) in one DataFrame with a column naming each
    row's series: ``fit`` fits a clone of ``detector`` on each series' rows
    (the series column removed, the rows in their given order), and every
    per-row method sends each row to its own series' model and returns the
    results in X's row order, with X's index. Rows of different series may be
    interleaved in any way; each series' rows must be in time order.

    For one shared model over all series, give the windowed detector a
    ``series_column`` instead.

    Parameters
    ----------
    detector : windowed detector
        The unfitted template (e.g. :class:`WindowedPCA`), cloned per series;
        its own ``series_column`` must be None.
    series_column : str
        Column naming each row's series; it is not passed to the detectors.

    Attributes
    ----------
    detectors_ : dict
        Series value -> the clone of ``detector`` fitted on that series.
    series_ : list
        The series seen at fit, in order of first appearance.
    n_features_in_ : int
        Columns of X at fit, the series column included.
    feature_names_in_ : ndarray of str
        Their names.

    See Also
    --------
    WindowedPCA, WindowedAutoencoder : with ``series_column``, one shared model.

    Notes
    -----
    Each series has its own alarm threshold, so there is no single
    ``threshold_`` or ``offset_``: :meth:`decision_function` gives each row
    relative to its own series' threshold (negative = alarm), and
    :meth:`predict` its sign. Scores of different series come from different
    models and are comparable only as far as their thresholds are.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from aepipe.sensor import PerSeriesDetector, WindowedPCA
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(200)
    >>> frame = pd.DataFrame({"pump_id": np.tile(["p1", "p2"], 100),
    ...                       "flow": np.sin(t / 10) + 0.1 * rng.normal(size=200),
    ...                       "pressure": np.cos(t / 10) + 0.1 * rng.normal(size=200)})
    >>> det = PerSeriesDetector(WindowedPCA(width=5), series_column="pump_id").fit(frame)
    >>> det.series_, det.predict(frame).shape
    (['p1', 'p2'], (200,))
    >>> p2 = frame[frame.pump_id == "p2"].drop(columns="pump_id")
    >>> alone = WindowedPCA(width=5).fit(p2)
    >>> bool(np.allclose(det.score_samples(frame)[1::2], alone.score_samples(p2)))
    True
    """

    _parameter_constraints: dict = {
        "detector": [HasMethods(["fit", "anomaly_score"])],
        "series_column": [str],
    }

    def __init__(self, detector, *, series_column):
        self.detector = detector
        self.series_column = series_column

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: pd.DataFrame, y=None):
        """Fit one clone of ``detector`` on each series' rows.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, n_columns)
            Holds ``series_column``; each series' rows in time order.
        y : array-like of shape (n_samples,) or None
            Per-row labels, passed to each series' detector with its rows.

        Returns
        -------
        self : object
        """
        inner = getattr(self.detector, "series_column", None)
        if inner is not None:
            raise ValueError(
                f"detector has series_column={inner!r}, but PerSeriesDetector fits one model per "
                "series itself: leave the detector's series_column=None (or use the detector "
                "alone for one model shared by all series)."
            )
        data, codes, series = split_series(X, self.series_column)
        validate_data(self, X, reset=True, skip_check_array=True)
        y = None if y is None else np.asarray(y).ravel()
        self.detectors_ = {}
        for value, rows in zip(series, series_rows(codes)):
            self.detectors_[value] = self._in_series(
                value, clone(self.detector).fit, data.iloc[rows], None if y is None else y[rows])
        self.series_ = series
        return self

    def _in_series(self, value, method, *args):
        """``method(*args)``, its data errors prefixed with the series they are about."""
        try:
            return method(*args)
        except DataValidationError as error:
            raise DataValidationError(
                f"Series {value!r} of series_column={self.series_column!r}: {error}"
            ) from None

    def _per_row(self, X, method: str):
        """``method`` of each row's series model, in X's row order (an array or a DataFrame)."""
        check_is_fitted(self)
        data, codes, series = split_series(X, self.series_column)
        validate_data(self, X, reset=False, skip_check_array=True)
        unknown = [value for value in series if value not in self.detectors_]
        if unknown:
            more = " ..." if len(self.series_) > 10 else ""
            raise DataValidationError(
                f"Series {unknown[0]!r} of series_column={self.series_column!r} was not seen at "
                f"fit ({len(unknown)} unknown series in X); known series: "
                f"{self.series_[:10]}{more}. Refit with its rows, or score it with a detector of "
                "its own."
            )
        out = result = None
        for value, rows in zip(series, series_rows(codes)):
            result = self._in_series(value, getattr(self.detectors_[value], method),
                                     data.iloc[rows])
            values = np.asarray(result)
            if out is None:
                out = np.empty((len(data), *values.shape[1:]), dtype=values.dtype)
            out[rows] = values
        if isinstance(result, pd.DataFrame):
            return pd.DataFrame(out, index=X.index, columns=result.columns)
        return out

    def anomaly_score(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's anomaly score under its series' model (higher = more anomalous).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return self._per_row(X, "anomaly_score")

    def score_samples(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's ``score_samples`` under its series' model (higher = more normal).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return self._per_row(X, "score_samples")

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's score relative to its own series' threshold: negative for alarms.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return self._per_row(X, "decision_function")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """-1 for alarms, +1 for normal rows, by each row's series' model.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._per_row(X, "predict")

    def feature_scores(self, X: pd.DataFrame) -> pd.DataFrame:
        """How unusual each channel is at each row, against its series' training rows.

        See :meth:`BaseWindowedDetector.feature_scores`: one scale for all
        channels, not additive.

        Returns
        -------
        contributions : DataFrame of shape (n_samples, n_channels), indexed like X
        """
        return self._per_row(X, "feature_scores")

    def feature_nll(self, X: pd.DataFrame) -> pd.DataFrame:
        """Each channel's additive share of each row's anomaly score, by its series' model.

        Returns
        -------
        contributions : DataFrame of shape (n_samples, n_channels), indexed like X
        """
        return self._per_row(X, "feature_nll")

    def reconstruct(self, X: pd.DataFrame) -> pd.DataFrame:
        """Each row's reconstruction (a denoised signal) by its series' model, in X's units.

        Returns
        -------
        X_reconstructed : DataFrame of shape (n_samples, n_channels), indexed like X
        """
        return self._per_row(X, "reconstruct")
