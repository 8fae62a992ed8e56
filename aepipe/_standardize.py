"""Input standardisation, written once for the tabular and the windowed detectors.

A column (or channel) is centred on its training mean and divided by its
training standard deviation; missing entries (NaN) do not count. What
counts as *constant* -- and keeps its units (scale 1) instead of being
blown up by the division -- is decided by one rule, :func:`scale_or_one`.
The robust spreads of :class:`~aepipe.AutoencoderEnsemble` (interquartile
ranges with fallbacks) and the variance floor of the PCA detectors live
here too.

NumPy only: this module is imported by ``aepipe._tabular`` and the sensor
layer alike.
"""

from __future__ import annotations

import numpy as np

__all__ = ["floor_variances", "scale_or_one", "spread_or_one", "standardization",
           "two_valued_columns", "two_valued_step"]

# Deviations below ~1e-154 square to subnormal or zero floats: a standard deviation
# this small is recomputed from deviations divided by their largest magnitude.
_UNDERFLOW_SPREAD = 1e-140
# A spread below this share of |mean| is float rounding of a constant (0.1 + 0.2 - 0.2 ...).
_CONSTANT_RELATIVE_SPREAD = 1e-12


def scale_or_one(scale: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Standard deviations, with 1 for constant columns: the one scale-floor rule.

    Constant relative to the column's own magnitude: a spread below 1e-12 of
    ``|mean|`` is float rounding of a constant (0.1 + 0.2 - 0.2 ...), while a
    column of values around 1e-15 varying by 10 % is not constant and keeps its
    scale. A spread of exactly 0 (or below the smallest normal float) is
    constant; so is a non-finite one.

    Examples
    --------
    >>> scale_or_one(np.array([2.0, 0.0, 1e-16, 1e-16]), np.array([0.0, 5.0, 1.0, 1e-15]))
    array([2.e+00, 1.e+00, 1.e+00, 1.e-16])
    """
    varies = (np.isfinite(scale) & (scale > _CONSTANT_RELATIVE_SPREAD * np.abs(center))
              & (scale >= np.finfo(np.float64).tiny))
    return np.where(varies, scale, 1.0)


def _without_underflow(scale: np.ndarray, deviation: np.ndarray, count) -> np.ndarray:
    """``scale`` with the standard deviations of tiny-valued columns computed safely.

    ``deviation`` holds the centred values (0 where missing), ``count`` the
    number of observed values (per column, or one number). Other columns keep
    their value bit for bit.
    """
    small = np.flatnonzero(np.isfinite(scale) & (scale < _UNDERFLOW_SPREAD))
    if not len(small):
        return scale
    scale = scale.copy()
    count = np.broadcast_to(np.asarray(count, dtype=np.float64), scale.shape)
    for j in small:
        peak = np.abs(deviation[:, j]).max()
        if peak > 0:
            scale[j] = peak * np.sqrt(np.sum((deviation[:, j] / peak) ** 2) / count[j])
    return scale


def standardization(values: np.ndarray, *, standardize: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of each column of ``values`` for ``(values - center) / scale``.

    The mean and the (population) standard deviation of the observed
    entries, the scale floored by :func:`scale_or_one`; a column never
    observed gets centre 0 and scale 1. ``standardize=False`` (or no rows):
    centre 0 and scale 1 everywhere.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_columns)
        Missing entries as NaN.
    standardize : bool, default=True

    Returns
    -------
    center, scale : ndarray of shape (n_columns,)

    Examples
    --------
    >>> center, scale = standardization(np.array([[1.0, 3.0], [3.0, 3.0], [np.nan, 3.0]]))
    >>> center.tolist(), scale.tolist()
    ([2.0, 3.0], [1.0, 1.0])
    """
    raw = np.asarray(values, dtype=np.float64)
    if not standardize or raw.shape[0] == 0:
        return np.zeros(raw.shape[1]), np.ones(raw.shape[1])
    if np.isnan(raw).any():
        # The statistics of the observed entries.
        observed = ~np.isnan(raw)
        count = np.maximum(observed.sum(axis=0), 1)
        center = np.where(observed, raw, 0.0).sum(axis=0) / count
        with np.errstate(over="ignore", invalid="ignore"):
            spread = np.where(observed, raw - center, 0.0)
            scale = np.sqrt((spread**2).sum(axis=0) / count)
        return center, scale_or_one(_without_underflow(scale, spread, count), center)
    center = raw.mean(axis=0)
    # The std computed on centred values.
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.sqrt(np.mean((raw - center) ** 2, axis=0))
    return center, scale_or_one(_without_underflow(scale, raw - center, len(raw)), center)


def spread_or_one(floor: float, *candidates: np.ndarray) -> np.ndarray:
    """Per entry, the first candidate spread above ``floor``; 1 where none is.

    For robust spreads with fallbacks: an interquartile range is 0 on a
    column that is mostly one value, where a mean absolute deviation (or a
    standard deviation) still measures the rest, and 1 keeps the units of a
    column with no spread at all.

    Examples
    --------
    >>> spread_or_one(1e-6, np.array([2.0, 0.0, 0.0]), np.array([9.0, 3.0, 0.0]))
    array([2., 3., 1.])
    """
    spread = np.ones(np.shape(candidates[0]))
    for candidate in reversed(candidates):
        spread = np.where(candidate > floor, candidate, spread)
    return spread


def floor_variances(variances) -> np.ndarray:
    """Principal variances floored at ``max(1e-12, 1e-9 * largest)``, so T² stays finite.

    Examples
    --------
    >>> floor_variances([4.0, 1e-15]).tolist()
    [4.0, 4e-09]
    """
    variances = np.asarray(variances, dtype=np.float64)
    return np.maximum(variances, max(1e-12, 1e-9 * float(variances.max(initial=0.0))))


def _two_levels(raw: np.ndarray) -> dict:
    """``{column: (low, high)}`` for each column with exactly two distinct values (NaN ignored)."""
    found = {}
    for j in range(raw.shape[1]):
        levels = np.unique(raw[:, j][~np.isnan(raw[:, j])])
        if len(levels) == 2:
            found[j] = (levels[0], levels[1])
    return found


def two_valued_columns(values: np.ndarray) -> np.ndarray:
    """Which columns take exactly two distinct values (missing entries ignored).

    A command flag, an on/off state, a two-position valve.

    Examples
    --------
    >>> two_valued_columns(np.array([[0.0, 1.5, 2.0], [1.0, 2.5, 2.0], [0.0, 0.5, np.nan]]))
    array([ True, False, False])
    """
    raw = np.asarray(values, dtype=np.float64)
    mask = np.zeros(raw.shape[1], dtype=bool)
    mask[list(_two_levels(raw))] = True
    return mask


def two_valued_step(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``scale`` with each two-valued column's replaced by its step (high - low).

    A column that takes exactly two values in training -- a command flag, an
    on/off state -- is measured in its own step, not its standard deviation:
    the standard deviation of a rarely set flag is tiny (0.1 for a flag set
    1 % of the time), so one toggle, which is a normal event for such a
    channel, would count as a deviation of 1/0.1 = 10 standard units and
    outweigh every other channel. Missing entries (NaN) are ignored.

    Examples
    --------
    >>> X = np.array([[0.0, 1.5], [0.0, 2.5], [0.0, 0.5], [1.0, 3.5]])
    >>> two_valued_step(X, np.array([0.433, 1.118])).tolist()
    [1.0, 1.118]
    """
    scale = np.array(scale, dtype=np.float64)
    for j, (low, high) in _two_levels(np.asarray(values, dtype=np.float64)).items():
        scale[j] = high - low
    return scale
