"""Thresholds for anomaly scores: quantile, control chart, POT/SPOT, best F1.

All thresholds act on *anomaly scores* (higher = more anomalous) and flag a
score as an alarm when it is strictly greater than ``threshold_``.
"""

from __future__ import annotations

import logging
import math
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._compat import Interval, StrOptions

logger = logging.getLogger(__name__)


def _check_scores(scores, name="scores") -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError(f"{name} is empty; at least one score is required to fit a threshold.")
    if not np.isfinite(values).all():
        bad = int(np.argwhere(~np.isfinite(values))[0][0])
        raise ValueError(f"{name} contains a non-finite value ({values[bad]}) at position {bad}.")
    return values


class BaseThreshold(BaseEstimator):
    """Base class: ``fit(scores)`` sets ``threshold_``; ``predict`` gives -1 for alarms."""

    def fit(self, scores: ArrayLike, y=None):
        """Learn ``threshold_`` from anomaly scores (higher = more anomalous).

        Parameters
        ----------
        scores : array-like of shape (n_samples,)
        y : ignored (used by :class:`BestF1Threshold`)

        Returns
        -------
        self : object
        """
        self._validate_params()
        self.threshold_ = float(self._threshold(_check_scores(scores)))
        return self

    def predict(self, scores: ArrayLike) -> np.ndarray:
        """-1 where ``scores > threshold_`` (alarm), +1 elsewhere.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "threshold_")
        return np.where(np.asarray(scores, dtype=np.float64) > self.threshold_, -1, 1)

    def fit_predict(self, scores: ArrayLike, y=None) -> np.ndarray:
        """Fit on ``scores`` and flag them."""
        return self.fit(scores, y).predict(scores)


class ContaminationThreshold(BaseThreshold):
    """The ``1 - contamination`` quantile of the training scores.

    What a tabular detector's ``contamination=<float>`` stands for: the
    threshold is computed as scikit-learn's outlier detectors compute their
    ``offset_`` (the ``100 * contamination`` percentile of the negated
    scores), so both give the same limit to the last bit.

    Parameters
    ----------
    contamination : float in (0, 0.5], default=0.01
        Share of training scores expected above the threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe.thresholds import ContaminationThreshold
    >>> t = ContaminationThreshold(contamination=0.1).fit(np.arange(100.0))
    >>> round(t.threshold_, 1)
    89.1
    """

    _parameter_constraints: dict = {"contamination": [Interval(Real, 0, 0.5, closed="right")]}

    def __init__(self, contamination=0.01):
        self.contamination = contamination

    def _threshold(self, scores):
        return -np.percentile(-scores, 100.0 * self.contamination)


class TukeyFenceThreshold(BaseThreshold):
    """Tukey's boxplot fence: ``Q3 + factor * (Q3 - Q1)`` of the training scores.

    Assumes no share of anomalies: the default of the tabular detectors
    (``contamination="auto"``). Reconstruction NLLs are right-skewed (sums of
    squares), so a symmetric ``median + k * MAD`` rule would flag far too
    many normal records; the fence reaches further on the long side.

    Parameters
    ----------
    factor : float >= 0, default=1.5
        Interquartile ranges above the third quartile (1.5: Tukey's inner
        fence; 3: his outer fence).

    Examples
    --------
    >>> from aepipe.thresholds import TukeyFenceThreshold
    >>> TukeyFenceThreshold().fit([1.0, 2.0, 3.0, 4.0, 5.0]).threshold_
    7.0
    """

    _parameter_constraints: dict = {"factor": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, factor=1.5):
        self.factor = factor

    def _threshold(self, scores):
        q1, q3 = np.percentile(scores, [25, 75])
        return q3 + self.factor * (q3 - q1)


class ControlChartThreshold(BaseThreshold):
    """Control-chart rule: ``factor`` times a high quantile of the training scores.

    SKAB's baselines set the upper control limit of a non-negative residual
    statistic this way (e.g. the 0.99 quantile times 3/2). Use it for
    non-negative scores (squared errors, T², Q); for scores of any sign the
    factor is applied to the distance above the median instead, so the rule
    does not flip for negative quantiles.

    With ``center="median"`` the factor always scales the distance of the
    quantile above the training median: ``median + factor * (q - median)``.
    Use it for scores with a noise floor, such as a window's reconstruction
    error summed over noisy channels: there ``factor * q`` mostly multiplies
    the irreducible floor, so the limit sits many spreads above normal scores
    and sustained moderate faults go unflagged. The centred limit keeps the
    same margin in units of the training scores' own spread.

    Parameters
    ----------
    quantile : float in (0, 1], default=0.99
    factor : float >= 1, default=1.5
    center : {"zero", "median"}, default="zero"
        ``"zero"``: SKAB's ``factor * quantile`` for non-negative scores (and
        the median-centred rule for scores of any sign); ``"median"``: always
        centred on the training median.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe.thresholds import ControlChartThreshold
    >>> ControlChartThreshold(quantile=1.0, factor=2.0).fit([0.0, 1.0, 2.0]).threshold_
    4.0
    >>> ControlChartThreshold(quantile=1.0, factor=2.0, center="median").fit(
    ...     [10.0, 11.0, 12.0]).threshold_
    13.0
    """

    _parameter_constraints: dict = {
        "quantile": [Interval(Real, 0, 1, closed="right")],
        "factor": [Interval(Real, 1, None, closed="left")],
        "center": [StrOptions({"zero", "median"})],
    }

    def __init__(self, quantile=0.99, factor=1.5, center="zero"):
        self.quantile = quantile
        self.factor = factor
        self.center = center

    def _threshold(self, scores):
        upper = float(np.quantile(scores, self.quantile))
        if self.center == "zero" and scores.min() >= 0:
            return self.factor * upper
        median = float(np.median(scores))
        return median + self.factor * (upper - median)


def _fit_gpd(peaks: np.ndarray) -> tuple[float, float]:
    """Shape (gamma) and scale (sigma) of a GPD fitted to positive excesses.

    Maximum likelihood (scipy) with the location fixed at 0; the method of
    moments when the likelihood fit fails or is degenerate.
    """
    from scipy.stats import genpareto

    peaks = np.asarray(peaks, dtype=np.float64)
    mean, var = float(peaks.mean()), float(peaks.var())
    if len(peaks) >= 3 and var > 0:
        try:
            gamma, _, sigma = genpareto.fit(peaks, floc=0.0)
            if np.isfinite(gamma) and np.isfinite(sigma) and sigma > 0:
                return float(gamma), float(sigma)
        except Exception:  # noqa: BLE001 - any optimiser failure falls back to moments
            logger.debug("GPD maximum-likelihood fit failed; using the method of moments.")
    if var <= 0 or mean <= 0:
        return 0.0, max(mean, 1e-12)
    gamma = 0.5 * (1.0 - mean**2 / var)
    sigma = 0.5 * mean * (1.0 + mean**2 / var)
    return float(gamma), float(max(sigma, 1e-12))


def _pot_quantile(t: float, gamma: float, sigma: float, q: float, n: int, n_peaks: int) -> float:
    """z_q = t + sigma/gamma * ((q n / N_t)^(-gamma) - 1)  (Siffer et al., 2017, eq. 1)."""
    ratio = q * n / max(n_peaks, 1)
    if abs(gamma) < 1e-8:
        return t - sigma * math.log(ratio)
    return t + sigma / gamma * (ratio ** (-gamma) - 1.0)


class POTThreshold(BaseThreshold):
    """Peaks-over-threshold: the score exceeded with probability ``q`` under a GPD tail.

    An initial threshold ``t`` is the ``level`` quantile of the scores; the
    excesses over ``t`` are fitted by a generalised Pareto distribution
    (shape gamma, scale sigma) and the alarm threshold is its extrapolated
    ``1 - q`` quantile, ``z_q = t + sigma/gamma ((q n / N_t)^-gamma - 1)``.
    Unlike an empirical quantile it can sit beyond the largest training score,
    which is what a rare-alarm rate needs.

    Parameters
    ----------
    q : float in (0, 1), default=1e-3
        Risk: the probability that a normal score exceeds ``threshold_``.
    level : float in (0, 1), default=0.98
        Quantile giving the initial threshold ``t``.

    Attributes
    ----------
    threshold_ : float
        z_q.
    initial_threshold_ : float
        t.
    gamma_, sigma_ : float
        Fitted GPD shape and scale.
    n_peaks_, n_samples_ : int

    References
    ----------
    Siffer, A., Fouque, P.-A., Termier, A. & Largouët, C. (2017). Anomaly
    detection in streams with extreme value theory. KDD 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe.thresholds import POTThreshold
    >>> scores = np.random.default_rng(0).exponential(size=20000)
    >>> t = POTThreshold(q=1e-3).fit(scores)
    >>> bool(abs(t.threshold_ - np.log(1e3)) < 0.7)
    True
    """

    _parameter_constraints: dict = {
        "q": [Interval(Real, 0, 1, closed="neither")],
        "level": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, q=1e-3, level=0.98):
        self.q = q
        self.level = level

    def _threshold(self, scores):
        self.n_samples_ = len(scores)
        self.initial_threshold_ = float(np.quantile(scores, self.level))
        peaks = scores[scores > self.initial_threshold_] - self.initial_threshold_
        self.n_peaks_ = len(peaks)
        if self.n_peaks_ == 0:
            logger.info("POT: no score above the initial threshold; using it as the threshold.")
            self.gamma_, self.sigma_ = 0.0, 0.0
            return self.initial_threshold_
        self.gamma_, self.sigma_ = _fit_gpd(peaks)
        self._peaks = peaks
        return max(
            _pot_quantile(self.initial_threshold_, self.gamma_, self.sigma_, self.q,
                          self.n_samples_, self.n_peaks_),
            self.initial_threshold_,
        )


class SPOTThreshold(POTThreshold):
    """Streaming POT (SPOT): calibrate with POT, then update the threshold on a stream.

    After :meth:`fit` on calibration scores, :meth:`update` takes one new
    score at a time: a score above ``threshold_`` is an alarm and is *not*
    learned from; a score between the initial threshold and ``threshold_`` is
    a new peak, so the GPD is refitted and ``threshold_`` moves; any other
    score only increments the count. :meth:`run` does this over a sequence.

    Parameters
    ----------
    q : float in (0, 1), default=1e-3
    level : float in (0, 1), default=0.98

    References
    ----------
    Siffer et al. (2017), Algorithm 1 (SPOT).

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe.thresholds import SPOTThreshold
    >>> rng = np.random.default_rng(0)
    >>> spot = SPOTThreshold(q=1e-3).fit(rng.exponential(size=2000))
    >>> alarms, thresholds = spot.run(np.r_[rng.exponential(size=200), 50.0])
    >>> bool(alarms[-1]), thresholds.shape
    (True, (201,))
    """

    def _threshold(self, scores):
        threshold = super()._threshold(scores)
        if not hasattr(self, "_peaks"):
            self._peaks = np.zeros(0)
        self.peaks_ = list(self._peaks)
        return threshold

    def update(self, score: float) -> bool:
        """Process one streaming score; return True when it is an alarm."""
        check_is_fitted(self, "threshold_")
        score = float(score)
        if not np.isfinite(score):
            raise ValueError(f"score={score} must be finite.")
        if score > self.threshold_:
            return True
        self.n_samples_ += 1
        if score > self.initial_threshold_:
            self.peaks_.append(score - self.initial_threshold_)
            self.n_peaks_ = len(self.peaks_)
            self.gamma_, self.sigma_ = _fit_gpd(np.asarray(self.peaks_))
            self.threshold_ = max(
                _pot_quantile(self.initial_threshold_, self.gamma_, self.sigma_, self.q,
                              self.n_samples_, self.n_peaks_),
                self.initial_threshold_,
            )
        return False

    def run(self, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Stream ``scores`` through :meth:`update`.

        Returns
        -------
        alarms : ndarray of bool, shape (n_samples,)
        thresholds : ndarray of shape (n_samples,)
            The threshold each score was compared with.
        """
        scores = _check_scores(scores)
        alarms = np.zeros(len(scores), dtype=bool)
        thresholds = np.empty(len(scores))
        for i, score in enumerate(scores):
            thresholds[i] = self.threshold_
            alarms[i] = self.update(score)
        return alarms, thresholds


class BestF1Threshold(BaseThreshold):
    """The threshold that maximises F1 on labelled validation scores.

    Parameters are none; ``fit(scores, y)`` needs ``y`` with 1 (or True) for
    anomalies and 0 for normal points.

    Attributes
    ----------
    threshold_ : float
        Midway between the lowest flagged score and the highest unflagged one.
    best_f1_ : float

    Examples
    --------
    >>> from aepipe.thresholds import BestF1Threshold
    >>> t = BestF1Threshold().fit([0.1, 0.2, 0.9, 1.0], [0, 0, 1, 1])
    >>> t.threshold_, t.best_f1_
    (0.55, 1.0)
    """

    _parameter_constraints: dict = {}

    def fit(self, scores: ArrayLike, y=None):
        """Choose ``threshold_`` maximising F1 of ``scores > threshold_`` against ``y``."""
        scores = _check_scores(scores)
        if y is None:
            raise ValueError("BestF1Threshold needs labels: call fit(scores, y) with y=1 for "
                             "anomalies and y=0 for normal points.")
        y = np.asarray(y).ravel()
        if len(y) != len(scores):
            raise ValueError(f"y has {len(y)} labels but scores has {len(scores)} values.")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"y must contain only 0 (normal) and 1 (anomaly); got "
                             f"{sorted(set(np.unique(y).tolist()))[:5]}.")
        y = y.astype(bool)
        if not y.any():
            raise ValueError("y has no anomaly (no 1); F1 is undefined.")
        order = np.argsort(-scores, kind="stable")
        sorted_scores, sorted_y = scores[order], y[order]
        tp = np.cumsum(sorted_y)
        fp = np.cumsum(~sorted_y)
        # Only cut between distinct scores: ties are flagged together.
        last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
        f1 = np.where(last_of_tie, 2 * tp / (tp + fp + y.sum()), -1.0)
        best = int(np.argmax(f1))
        self.best_f1_ = float(f1[best])
        lowest_flagged = sorted_scores[best]
        below = sorted_scores[best + 1] if best + 1 < len(scores) else lowest_flagged - 1.0
        self.threshold_ = float(0.5 * (lowest_flagged + below))
        return self


class CentredControlChartThreshold(ControlChartThreshold):
    """:class:`ControlChartThreshold` with ``center="median"`` (a named default).

    ``median + factor * (quantile - median)`` of the training scores.

    Examples
    --------
    >>> from aepipe.thresholds import CentredControlChartThreshold
    >>> CentredControlChartThreshold(quantile=1.0, factor=2.0).fit([10.0, 11.0, 12.0]).threshold_
    13.0
    """

    def __init__(self, quantile=0.99, factor=1.5, center="median"):
        super().__init__(quantile=quantile, factor=factor, center=center)


_NAMED = {
    "control_chart": ControlChartThreshold,
    "centred_control_chart": CentredControlChartThreshold,
    "contamination": ContaminationThreshold,
    "tukey_fence": TukeyFenceThreshold,
    "pot": POTThreshold,
    "spot": SPOTThreshold,
    "best_f1": BestF1Threshold,
}


def make_threshold(threshold) -> BaseThreshold:
    """A fresh threshold object from a name or a (cloned) threshold instance.

    Parameters
    ----------
    threshold : {"control_chart", "centred_control_chart", "contamination", "tukey_fence", \
"pot", "spot", "best_f1"} or BaseThreshold

    Returns
    -------
    threshold : BaseThreshold (unfitted)
    """
    from sklearn.base import clone

    if isinstance(threshold, str):
        if threshold not in _NAMED:
            raise ValueError(
                f"threshold={threshold!r} is not a known threshold; use one of "
                f"{sorted(_NAMED)} or a BaseThreshold instance."
            )
        return _NAMED[threshold]()
    if isinstance(threshold, BaseThreshold):
        return clone(threshold)
    raise TypeError(
        f"threshold={threshold!r} must be one of {sorted(_NAMED)} or a BaseThreshold instance, "
        f"got {type(threshold).__name__}."
    )

