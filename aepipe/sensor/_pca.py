"""Windowed PCA with Hotelling's T², Q (SPE) and the combined T²+Q rule."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike

from .._compat import Interval, StrOptions, _fit_context
from .._standardize import floor_variances
from ..estimators._base import TRAINING_PARAMETERS, without
from ..estimators._missing_pca import fit_with_missing, masked_scores
from ..estimators._pca import fit_pca
from ..thresholds import make_threshold
from ._base import BaseWindowedDetector


class WindowedPCA(BaseWindowedDetector):
    """PCA on flattened sliding windows, scored by T², Q or the combined T²+Q rule.

    ``width=1`` is classical multivariate statistical process control on
    single timestamps (SKAB's "PCA T²+Q" baseline); larger widths add the
    time structure of each window.

    With ``statistic="t2+q"`` each statistic gets its own threshold (the
    ``threshold`` rule fitted on its training point scores) and a timestamp
    is an alarm when either exceeds its limit. The anomaly score is then
    ``max(T² / limit_T², Q / limit_Q)``, so ``threshold_`` is 1, and
    :meth:`feature_nll` holds the contributions of the statistic that
    decides each timestamp, divided by its limit.

    Parameters
    ----------
    width : int, default=1
    n_components : int, float in (0, 1) or None, default=0.9
        As in :class:`~sklearn.decomposition.PCA` (a share of variance to keep),
        capped one below full rank so Q stays informative. A share (or None)
        is also capped one below the number of non-overlapping training
        windows (about ``n_rows / width``): overlapping windows are not
        independent samples, and more components than that fit the training
        stream's own noise, so the training Q and its limit collapse and every
        later window alarms. ``pca_.n_components_`` holds the number kept.
    statistic : {"t2+q", "t2", "q"}, default="t2+q"
        Hotelling's T² contributions are the classical
        ``sum_k t_k p_kj z_j / lambda_k`` (they can be negative); Q's are
        squared residuals.
    stride, point_rule, threshold, standardize, slow_channels, combine, context_channels, \
time_column, series_column, gap_policy, max_gap_factor, handle_missing
        As in :class:`WindowedAutoencoder` (``slow_channels="auto"`` needs
        ``width > 1``: with one-row windows no channel is slow). With
        ``handle_missing="mask"`` the principal subspace is fitted by EM
        imputation and each window's scores are fitted to its observed
        readings, as in :class:`~aepipe.PCADetector`; a missing reading adds
        nothing to T² or Q.

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
    statistic_thresholds_ : dict
        ``{"t2": limit, "q": limit}`` for ``statistic="t2+q"``.
    threshold_, offset_, mean_, scale_, n_features_in_, feature_names_in_

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe.sensor import WindowedPCA
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 4))
    >>> det = WindowedPCA(width=5).fit(X)
    >>> X_bad = X.copy(); X_bad[150:160, 0] += 5.0
    >>> bool((det.predict(X_bad)[150:160] == -1).all())
    True
    """

    _parameter_constraints: dict = {
        **without(BaseWindowedDetector._parameter_constraints, *TRAINING_PARAMETERS,
                  "random_state"),
        "n_components": [Interval(Integral, 1, None, closed="left"),
                         Interval(Real, 0, 1, closed="neither"), None],
        "statistic": [StrOptions({"t2+q", "t2", "q"})],
    }

    def __init__(self, width=1, *, stride=1, point_rule="mean", n_components=0.9,
                 statistic="t2+q", threshold="control_chart", standardize=True,
                 slow_channels="keep", combine="sum",
                 context_channels=None, time_column=None, series_column=None,
                 gap_policy="split", max_gap_factor=3.0, handle_missing="error"):
        super().__init__(
            width=width, stride=stride, point_rule=point_rule, threshold=threshold,
            standardize=standardize, slow_channels=slow_channels, combine=combine,
            context_channels=context_channels, time_column=time_column,
            series_column=series_column, gap_policy=gap_policy, max_gap_factor=max_gap_factor,
            handle_missing=handle_missing,
        )
        self.n_components = n_components
        self.statistic = statistic

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y=None):
        """Fit the principal subspace and the threshold(s) on a normal stream.

        Returns
        -------
        self : object
        """
        if self.statistic != "t2+q":
            return self._fit_stream(X, y)
        prepared = self._prepare(X, reset=True)
        y = prepared.in_prepared_order(y)
        self._fit_windows(self._training_windows(prepared))
        self.statistic_thresholds_ = {}
        for statistic in ("t2", "q"):
            scores = self._statistic_points(prepared, statistic).sum(axis=1)
            limit = make_threshold(self.threshold).fit(scores, y).threshold_
            self.statistic_thresholds_[statistic] = max(float(limit), 1e-12)
        self._fit_contribution_calibration(self._point_contributions(prepared),
                                           self._steady_rows(prepared), threshold=1.0)
        self.threshold_object_ = None
        self.threshold_ = 1.0
        self.offset_ = -1.0
        return self

    def _fit_windows(self, windows):
        flat = windows.reshape(len(windows), -1)
        if np.isnan(flat).any():  # handle_missing="mask": EM imputation around the fit
            fit_with_missing(flat, self._fit_flat,
                             lambda F: self.pca_.inverse_transform(self._scores(F)))
            return
        self._fit_flat(flat)

    def _scores(self, flat):
        """Principal scores of flattened windows, fitted to the observed readings."""
        if np.isnan(flat).any():
            return masked_scores(flat, self.pca_.mean_, self.pca_.components_,
                                 self.pca_.explained_variance_, self.pca_.noise_variance_)
        return self.pca_.transform(flat)

    def _fit_flat(self, flat):
        n_samples, n_features = flat.shape
        n_components = self.n_components
        full = min(n_samples, n_features)
        if n_components is None:
            n_components = max(1, full - 1)
        if isinstance(n_components, Integral) and n_components >= full:
            raise ValueError(
                f"n_components={n_components} must be below min(n_windows, width * "
                f"n_channels)={full} so that Q has a residual."
            )
        pca = fit_pca(flat, n_components)
        # Overlapping windows hold about one independent sample per ``width`` rows;
        # components beyond that count fit the training stretch's own noise, so its
        # Q (and the limit fitted on it) is near zero and every later window alarms.
        # A chosen number of components is kept; a share of variance is capped.
        if not isinstance(self.n_components, Integral):
            independent = (n_samples - 1) * self.stride // self.width + 1
            cap = max(1, min(full, independent) - 1)
            if pca.n_components_ > cap:
                pca = fit_pca(flat, cap)
        self.pca_ = pca
        self.variances_ = floor_variances(pca.explained_variance_)

    def _window_statistic(self, windows, statistic):
        n_windows, width, n_channels = windows.shape
        flat = windows.reshape(n_windows, -1)
        scores = self._scores(flat)
        if statistic == "t2":
            per_position = ((scores / self.variances_) @ self.pca_.components_) * (
                flat - self.pca_.mean_)
        else:
            per_position = (flat - self.pca_.inverse_transform(scores)) ** 2
        per_position = np.nan_to_num(per_position, nan=0.0)  # a missing reading adds nothing
        return per_position.reshape(n_windows, width, n_channels).sum(axis=1)

    def _statistic_points(self, prepared, statistic):
        return self._scored(self._windows_to_rows(
            prepared, lambda windows: self._window_statistic(windows, statistic)))

    def _window_contributions(self, windows):
        return self._window_statistic(windows, self.statistic)

    def _point_contributions(self, prepared):
        if self.statistic != "t2+q":
            return super()._point_contributions(prepared)
        t2 = self._statistic_points(prepared, "t2") / self.statistic_thresholds_["t2"]
        q = self._statistic_points(prepared, "q") / self.statistic_thresholds_["q"]
        use_t2 = (t2.sum(axis=1) >= q.sum(axis=1))[:, None]
        return np.where(use_t2, t2, q)

    def _window_reconstruction(self, windows):
        flat = windows.reshape(len(windows), -1)
        return self.pca_.inverse_transform(self._scores(flat)).reshape(windows.shape)

