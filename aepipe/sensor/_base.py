"""Shared base of the windowed detectors: input handling, windows, point scores, threshold."""

from __future__ import annotations

import logging
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

from .._compat import HasMethods, Interval, StrOptions, validate_data
from .._saved_state import SavedStateMixin
from .._standardize import standardization, two_valued_columns, two_valued_step
from .._tabular import _FLOAT32_LIMIT
from ..estimators._base import (
    CalibratedContributionsMixin,
    OutlierContractMixin,
    SharedParameters,
)
from ..exceptions import DataValidationError
from ..thresholds import make_threshold
from ..thresholds._thresholds import _NAMED as _THRESHOLD_NAMES
from ._windows import (
    GAP_POLICIES,
    POINT_RULES,
    find_segments,
    positions_to_points,
    sliding_windows,
    window_starts,
    windows_to_points,
)

logger = logging.getLogger(__name__)

# Scoring slides one window per row, so a stream of n rows has n windows of
# width x n_channels values. They are built block by block, about this many
# values (8 MiB in float64) at a time, so scoring memory is bounded by the
# block (a few copies of it in the models' arithmetic), not by the stream.
_BLOCK_VALUES = 2**20


def _utc_times(times) -> np.ndarray:
    """Timestamps as naive UTC ``datetime64[ns]``: tz-aware ones are converted (a DST change
    is then no backwards step), naive ones are kept as they are."""
    if isinstance(times, pd.Index):
        if getattr(times, "tz", None) is not None:
            times = times.tz_convert("UTC").tz_localize(None)
        return times.to_numpy()
    try:
        converted = pd.to_datetime(times)
    except (TypeError, ValueError):
        # Mixed offsets, or tz-aware and naive values together: place them all in UTC.
        try:
            converted = pd.to_datetime(times, utc=True)
        except (TypeError, ValueError) as error:
            raise _unreadable_times(times, error) from None
    if getattr(converted.dt, "tz", None) is not None:
        converted = converted.dt.tz_convert("UTC").dt.tz_localize(None)
    return converted.to_numpy()


def _unreadable_times(times: pd.Series, error: BaseException) -> DataValidationError:
    """The error naming the first value of ``times`` that is not a timestamp: its row, the
    value, and the format of the first value (which pandas reads all of them in). pandas'
    own message runs over several lines and stops at "You might want to try:"."""
    from pandas.tseries.api import guess_datetime_format

    from .._tabular import _position

    given = pd.Series(times.to_numpy(dtype=object))
    given = given[given.notna()]
    first = given.iloc[0] if len(given) else None
    fmt = guess_datetime_format(first) if isinstance(first, str) else None
    bad = None
    if fmt is not None:
        unread = pd.to_datetime(given, format=fmt, errors="coerce", utc=True).isna().to_numpy()
        bad = int(given.index[unread][0]) if unread.any() else None
    if bad is None:  # one by one: slow, and only on this error's path
        for row, value in given.items():
            try:
                pd.to_datetime([value], utc=True)
            except (TypeError, ValueError):
                bad = int(row)
                break
    if bad is None:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return DataValidationError(
            f"The time column {times.name!r} holds values that are not timestamps "
            f"({first_line}).")
    expected = (f"a time in the column's format {fmt!r}" if fmt
                else "a date and time, e.g. '2024-01-31 12:00:00'")
    return DataValidationError(
        f"The time column {times.name!r} has {given[bad]!r} at "
        f"{_position(getattr(times, 'index', None), bad)}, not {expected}; fix or drop that "
        "row.")


def _long_segments(segments, width: int):
    """The segments with at least one full window (training uses only these)."""
    return [(start, stop) for start, stop in segments if stop - start >= width]


def split_series(X, column: str):
    """``X`` without the series column, each row's series code, and the series.

    Codes number the series in order of first appearance; ``series`` lists
    their values in that order. A missing series value is an error naming
    its row.
    """
    if not isinstance(X, pd.DataFrame):
        raise DataValidationError(
            f"series_column={column!r} needs a DataFrame, got {type(X).__name__}."
        )
    if column not in X.columns:
        raise DataValidationError(
            f"series_column={column!r} is not a column of X; columns are {list(X.columns)[:10]}."
        )
    missing = X[column].isna().to_numpy()
    if missing.any():
        row = int(missing.argmax())
        raise DataValidationError(
            f"series_column={column!r} is missing (NaN/None) at row {row} (index "
            f"{X.index[row]!r}); every row needs the series it belongs to."
        )
    codes, series = pd.factorize(X[column])
    return X.drop(columns=[column]), codes, series.tolist()


def series_rows(codes) -> list:
    """Row positions of each series (by code), each in the order given."""
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes))[:-1])


class _Prepared:
    """A validated stream: standardised values and its gap-free segments.

    With a series column the rows are grouped by series: ``values[i]`` is the
    caller's row ``order[i]`` (``order`` is None without one).
    """

    def __init__(self, values, segments, index, order=None):
        self.values = values
        self.segments = segments
        self.index = index
        self.order = order

    def in_input_order(self, rows: np.ndarray) -> np.ndarray:
        """Per-row results of the prepared stream, back in the caller's row order."""
        if self.order is None:
            return rows
        out = np.empty_like(rows)
        out[self.order] = rows
        return out

    def in_prepared_order(self, y):
        """Per-row labels given in the caller's row order, in the prepared order."""
        if y is None:
            return None
        y = np.asarray(y).ravel()
        return y if self.order is None else y[self.order]


def window_context(model) -> int:
    """Rows of context a model needs on each side of a row to score it; 0 for tabular models.

    A windowed detector scores a row from the ``width`` windows covering it,
    which reach ``width - 1`` rows before and after it: a stream scored in
    pieces gives the same scores as scored whole when every piece carries
    that many neighbouring rows. ``model`` may be a detector, a Pipeline
    ending in one, or an object holding one as ``.pipeline`` (aepipe's MLflow
    model).

    Examples
    --------
    >>> from aepipe import Autoencoder, make_default_sensor_detector
    >>> window_context(make_default_sensor_detector()), window_context(Autoencoder())
    (31, 0)
    """
    final = _windowed_final(model)
    return int(final.width) - 1 if final is not None else 0


def _channel_and_row(data, row: int, column: int) -> tuple[str, str]:
    """How an error names channel ``column`` and row ``row`` of the input ``data``."""
    if isinstance(data, pd.DataFrame):
        return repr(data.columns[column]), f"row {row} (index {data.index[row]!r})"
    return f"{column} (0-based)", f"row {row}"


def _refuse_scaled_overflow(scaled: np.ndarray, data, order) -> None:
    """A DataValidationError naming the first reading that leaves float32's range once
    standardised (far outside a channel that barely varied in training); ``order`` maps
    the rows of ``scaled`` to those of ``data`` (None: the same)."""
    with np.errstate(invalid="ignore"):
        overflow = np.abs(scaled) > _FLOAT32_LIMIT
    if not overflow.any():
        return
    rows, columns = np.nonzero(overflow)
    input_rows = rows if order is None else order[rows]
    first = int(np.argmin(input_rows))
    row, column = int(input_rows[first]), int(columns[first])
    channel, where = _channel_and_row(data, row, column)
    raise DataValidationError(
        f"Channel {channel} at {where} is {abs(scaled[rows[first], column]):.3g} training "
        f"standard deviations from its training mean, beyond the float32 range the detectors "
        f"compute in (|x| <= {_FLOAT32_LIMIT:.3g}); the channel barely varied in training. "
        "Rescale the channel (other units) or fit on a stretch where it varies."
    )


def _refuse_bad_readings(values: np.ndarray, data, name: str, masked: bool) -> None:
    """A DataValidationError naming the first infinite reading of ``values``, too large for
    float32, or missing (NaN) unless ``masked``, with the fix; ``data`` (the input) names rows
    and channels."""
    infinite = np.isinf(values)
    with np.errstate(invalid="ignore"):
        too_large = np.abs(values) > _FLOAT32_LIMIT  # the infinite ones too
    bad = too_large if masked else too_large | np.isnan(values)
    if not bad.any():
        return
    row, column = np.argwhere(bad)[0]
    channel, where = _channel_and_row(data, row, column)
    if infinite[row, column]:
        raise DataValidationError(
            f"Channel {channel} has an infinite reading ({values[row, column]}) at {where}; "
            f"{int(infinite.sum())} infinite in all. A windowed detector needs finite "
            "readings: replace them (e.g. by NaN with handle_missing='mask') or drop the rows."
        )
    if too_large[row, column]:
        # The networks compute in float32, where such a reading becomes inf; one rule for
        # every detector, as for the tabular ones (aepipe/_tabular.py).
        raise DataValidationError(
            f"Channel {channel} has the reading {values[row, column]:g} at {where}, beyond the "
            f"float32 range the detectors compute in (|x| <= {_FLOAT32_LIMIT:.3g}); "
            f"{int(too_large.sum())} such in all. Rescale the channel (other units, or a log "
            "transform) before fitting and scoring, or replace the readings (e.g. by NaN with "
            "handle_missing='mask')."
        )
    raise DataValidationError(
        f"Channel {channel} has a missing reading (NaN) at {where}; "
        f"{int(np.isnan(values).sum())} missing in all. Pass {name}(handle_missing='mask') "
        "to leave missing readings out of the model and the scores, or fill them first "
        "(e.g. DataFrame.interpolate)."
    )


def series_column_of(model):
    """The column naming each row's series for a windowed model with one, else None.

    Scoring a file in pieces with :func:`window_context` rows of context
    keeps each row's windows only when every series' rows are contiguous
    (rows grouped by series, in time order within each).

    Examples
    --------
    >>> from aepipe.sensor import PerSeriesDetector, WindowedPCA
    >>> series_column_of(PerSeriesDetector(WindowedPCA(), series_column="pump"))
    'pump'
    >>> series_column_of(WindowedPCA()) is None
    True
    """
    from ._series import PerSeriesDetector

    final = _final_step(model)
    windowed = isinstance(final, (BaseWindowedDetector, PerSeriesDetector))
    return getattr(final, "series_column", None) if windowed else None


def _final_step(model):
    """The last step of ``model``: through an MLflow model's ``.pipeline`` and a Pipeline."""
    from sklearn.pipeline import Pipeline

    model = getattr(model, "pipeline", model)
    return model[-1] if isinstance(model, Pipeline) else model


def _windowed_final(model):
    """The windowed detector that scores for ``model`` (through a Pipeline, an MLflow
    model's ``.pipeline`` or a :class:`PerSeriesDetector`), or None."""
    from ._series import PerSeriesDetector

    final = _final_step(model)
    if isinstance(final, PerSeriesDetector):
        final = final.detector
    return final if isinstance(final, BaseWindowedDetector) else None


class BaseWindowedDetector(SavedStateMixin, SharedParameters, CalibratedContributionsMixin,
                           OutlierContractMixin, OutlierMixin, BaseEstimator):
    """Base class for windowed detectors (not for direct use).

    Subclasses implement, on standardised windows ``W`` of shape
    ``(n_windows, width, n_channels)``:

    - ``_fit_windows(W)``: learn the model;
    - ``_window_contributions(W)``: each channel's additive share of the
      window's anomaly score, ``(n_windows, n_channels)``;
    - ``_window_reconstruction(W)`` (optional): the model's reconstruction,
      same shape as ``W``.

    The base learns, on the training rows, each channel's distribution of
    contributions (``feature_quantiles_``, ``feature_quantile_levels_``,
    ``feature_tail_scale_``), so :meth:`feature_scores` compares channels
    on one scale; :meth:`feature_nll` keeps the additive shares.

    The parameters every windowed detector takes (``width``, ``stride``,
    ``point_rule``, ``time_column``, ``series_column``, ``gap_policy``,
    ``max_gap_factor``, ``slow_channels``, ``combine``, ``context_channels``) are
    declared here and those shared with the tabular detectors in
    :class:`SharedParameters`; a subclass drops the ones it does not take. ``threshold`` is required here
    (no ``contamination`` to derive it from).
    """

    _parameter_constraints: dict = {
        **SharedParameters._parameter_constraints,
        "width": [Interval(Integral, 1, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "point_rule": [StrOptions(set(POINT_RULES))],
        "time_column": [str, None],
        "series_column": [str, None],
        "gap_policy": [StrOptions(set(GAP_POLICIES))],
        "max_gap_factor": [Interval(Real, 1, None, closed="neither")],
        "threshold": [StrOptions(set(_THRESHOLD_NAMES)), HasMethods(["fit", "predict"])],
        "slow_channels": [StrOptions({"auto", "keep"})],
        "combine": [StrOptions({"sum", "max"})],
        "context_channels": [None, StrOptions({"two_valued"}), list, tuple],
    }

    # ------------------------------------------------------------ input
    def _split_time(self, X):
        if isinstance(X, pd.DataFrame):
            if self.time_column is not None:
                if self.time_column not in X.columns:
                    raise DataValidationError(
                        f"time_column={self.time_column!r} is not a column of X; columns are "
                        f"{list(X.columns)[:10]}."
                    )
                column = X[self.time_column]
                times = column.to_numpy() if pd.api.types.is_numeric_dtype(column) else (
                    _utc_times(column))
                return X.drop(columns=[self.time_column]), times
            if isinstance(X.index, pd.DatetimeIndex):
                return X, _utc_times(X.index)
            return X, None
        if self.time_column is not None:
            raise DataValidationError(
                f"time_column={self.time_column!r} needs a DataFrame, got {type(X).__name__}."
            )
        return X, None

    def _split_columns(self, X):
        """``(data, times, codes, series)``: the channels, the timestamps or None, and with
        ``series_column`` each row's series code and the series (else None, None)."""
        series_column = getattr(self, "series_column", None)
        if series_column is None:
            return (*self._split_time(X), None, None)
        if series_column == self.time_column:
            raise ValueError(
                f"series_column={series_column!r} and time_column={self.time_column!r} name the "
                "same column; the series column names each row's series, the time column its "
                "timestamp."
            )
        data, codes, series = split_series(X, series_column)
        return (*self._split_time(data), codes, series)

    def _segments(self, times, n_rows: int, codes, series):
        """Gap-free segments and the row order grouping the series (None without series)."""
        if codes is None:
            segments = find_segments(times, gap_policy=self.gap_policy,
                                     max_gap_factor=self.max_gap_factor)
            return [(0, n_rows)] if segments is None else segments, None
        groups = series_rows(codes)
        order = np.concatenate(groups)
        segments, start = [], 0
        for value, rows in zip(series, groups):
            try:
                found = find_segments(None if times is None else times[rows],
                                      gap_policy=self.gap_policy,
                                      max_gap_factor=self.max_gap_factor)
            except DataValidationError as error:
                raise DataValidationError(
                    f"In series {value!r} of series_column={self.series_column!r} (rows counted "
                    f"within the series): {error}"
                ) from None
            segments += [(start + a, start + b) for a, b in found or [(0, len(rows))]]
            start += len(rows)
        return segments, order

    def _prepare(self, X, *, reset: bool) -> _Prepared:
        data, times, codes, series = self._split_columns(X)
        masked = getattr(self, "handle_missing", "error") == "mask"
        # NaN and infinities are checked here, to name the channel and row of the first.
        values = validate_data(self, data, reset=reset, dtype=np.float64, ensure_min_samples=1,
                               ensure_all_finite=False)
        _refuse_bad_readings(values, data, type(self).__name__, masked)
        segments, order = self._segments(times, len(values), codes, series)
        if order is not None:
            values = values[order]
        if reset and not any(stop - start >= self.width for start, stop in segments):
            longest = max(stop - start for start, stop in segments)
            raise DataValidationError(
                f"No gap-free segment has width={self.width} rows to train on (the longest has "
                f"{longest}). Use a smaller width, resample the data, or gap_policy='ignore' to "
                "treat the rows as regularly sampled."
            )
        if reset:
            # handle_missing="mask": the observed values' statistics; a channel constant in
            # training keeps its units instead of exploding.
            self.mean_, self.scale_ = standardization(values, standardize=self.standardize)
            if self.standardize:
                self.scale_ = two_valued_step(values, self.scale_)
        index = X.index if isinstance(X, pd.DataFrame) else None
        with np.errstate(over="ignore"):
            scaled = (values - self.mean_) / self.scale_
        _refuse_scaled_overflow(scaled, data, order)
        if reset:
            self._find_slow_channels(scaled, segments)
            self.context_mask_ = self._resolve_context(values)
        return _Prepared(scaled, segments, index, order)

    def _resolve_context(self, values) -> np.ndarray:
        """``context_mask_``: the channels the model reads but does not score."""
        spec = getattr(self, "context_channels", None)
        n_channels = values.shape[1]
        if spec is None:
            return np.zeros(n_channels, dtype=bool)
        if isinstance(spec, str):  # "two_valued"
            mask = two_valued_columns(values)
        else:
            names = self._channel_names()
            mask = np.zeros(n_channels, dtype=bool)
            for item in spec:
                if isinstance(item, Integral) and not isinstance(item, bool):
                    if not 0 <= item < n_channels:
                        raise DataValidationError(
                            f"context_channels holds position {item}, but there are "
                            f"{n_channels} channels (positions 0..{n_channels - 1})."
                        )
                    mask[item] = True
                elif item in names:
                    mask[names.index(item)] = True
                else:
                    shown = ", ".join(map(repr, names[:20])) + (", ..." if len(names) > 20 else "")
                    raise DataValidationError(
                        f"context_channels names {item!r}, which is not a channel (the channels: "
                        f"{shown}). Give channel names or positions."
                    )
        if mask.all():
            chosen = repr(spec) if isinstance(spec, str) else "the list"
            raise DataValidationError(
                f"context_channels={chosen} leaves no channel to score: all {n_channels} "
                "channels would only be read. Leave at least one channel out of it."
            )
        return mask

    def _scored(self, contributions: np.ndarray) -> np.ndarray:
        """``contributions`` with the context channels' set to 0: they are read, not scored."""
        mask = getattr(self, "context_mask_", None)
        if mask is None or not mask.any():
            return contributions
        return np.where(mask, 0.0, contributions)

    def _find_slow_channels(self, scaled, segments) -> None:
        """Flag channels whose training variance lives mostly *between* windows.

        ``within_window_ratio_[j]`` is the mean variance of channel ``j``
        inside the training windows over its variance across the whole
        training stream: about 1 for a channel that fluctuates quickly around
        a stable level (noise, vibration, flow), near 0 for one that drifts
        slowly (temperatures, wear, fill levels). With
        ``slow_channels="auto"``, channels with a ratio below 0.5 are *slow*:
        each window of them is centred on its own mean, so the model learns and
        scores their shape and slope inside the window but not their absolute
        level. A short training stretch cannot show the normal range of a
        drifting level, and scoring it flags every later normal row once the
        drift leaves that range.
        """
        slow_channels = getattr(self, "slow_channels", "keep")
        n_channels = scaled.shape[1]
        ratio = np.ones(n_channels)
        if self.width > 1:
            within, total, count = np.zeros(n_channels), np.zeros(n_channels), 0
            with warnings.catch_warnings():  # nan-aware only with missing values
                warnings.simplefilter("ignore", RuntimeWarning)
                var = np.nanvar if np.isnan(scaled).any() else np.var
                for start, stop in _long_segments(segments, self.width):
                    windows = sliding_windows(scaled[start:stop], self.width)
                    spread = var(windows, axis=1)
                    within += np.nan_to_num(spread, nan=0.0).sum(axis=0)
                    count += np.isfinite(spread).sum(axis=0)
                total = np.nan_to_num(var(scaled, axis=0), nan=0.0)
            ratio = np.where(total > 0, within / np.maximum(count, 1)
                             / np.where(total > 0, total, 1.0), 1.0)
        self.within_window_ratio_ = ratio
        self.slow_channels_ = (ratio < 0.5) if slow_channels == "auto" else np.zeros(
            n_channels, dtype=bool)
        if self.slow_channels_.any():
            logger.info("%s: centring slow channels %s per window.", type(self).__name__,
                        np.flatnonzero(self.slow_channels_).tolist())

    def _centre_slow(self, windows):
        """Windows with slow channels centred per window, and the removed means."""
        slow = getattr(self, "slow_channels_", None)
        means = np.zeros((len(windows), 1, windows.shape[2]))
        if slow is None or not slow.any():
            return windows, means
        if np.isnan(windows).any():  # handle_missing="mask": the observed values' mean
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                means[:, :, slow] = np.nan_to_num(
                    np.nanmean(windows[:, :, slow], axis=1, keepdims=True), nan=0.0)
        else:
            means[:, :, slow] = windows[:, :, slow].mean(axis=1, keepdims=True)
        return windows - means, means

    def _training_windows(self, prepared: _Prepared) -> np.ndarray:
        """All windows at ``stride`` of every segment, slow channels centred per window."""
        return np.concatenate([
            self._centre_slow(sliding_windows(prepared.values[start:stop], self.width,
                                              self.stride))[0]
            for start, stop in _long_segments(prepared.segments, self.width)
        ])

    def _scoring_blocks(self, prepared: _Prepared):
        """Every window of a stream at stride 1, a block of rows at a time.

        Yields ``(first, last, offset, n_rows, starts, windows, means)``: rows
        ``first:last`` get their values from ``windows``, which cover rows
        ``offset : offset + n_rows`` and start at ``offset + starts``. The block
        is widened by ``width - 1`` rows on each side (within its segment), so
        each of its rows sees exactly the windows it sees in the whole stream.
        """
        width = self.width
        block = max(width, _BLOCK_VALUES // (width * prepared.values.shape[1]))
        for seg_start, seg_stop in prepared.segments:
            if seg_stop - seg_start < width:
                # A short segment is scored with the context it has: mirrored at both ends
                # to one window's length (only its own rows are returned).
                left = (width - (seg_stop - seg_start)) // 2
                padded = np.pad(prepared.values[seg_start:seg_stop],
                                ((left, width - (seg_stop - seg_start) - left), (0, 0)),
                                mode="symmetric")
                windows, means = self._centre_slow(sliding_windows(padded, width, 1))
                yield (seg_start, seg_stop, seg_start - left, width, window_starts(width, width, 1),
                       windows, means)
                continue
            for first in range(seg_start, seg_stop, block):
                last = min(first + block, seg_stop)
                lo, hi = max(first - width + 1, seg_start), min(last + width - 1, seg_stop)
                windows, means = self._centre_slow(
                    sliding_windows(prepared.values[lo:hi], width, 1))
                yield first, last, lo, hi - lo, window_starts(hi - lo, width, 1), windows, means

    def _windows_to_rows(self, prepared: _Prepared, window_values) -> np.ndarray:
        """Per-row values from ``window_values(windows) -> (n_windows, k)``, by ``point_rule``."""
        out = np.empty_like(prepared.values)
        for first, last, offset, n_rows, starts, windows, _ in self._scoring_blocks(prepared):
            rows = windows_to_points(window_values(windows), starts, self.width, n_rows,
                                     self.point_rule)
            out[first:last] = rows[first - offset:last - offset]
        return out

    def _channel_names(self) -> list:
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return list(names)
        return [f"x{j}" for j in range(self.n_features_in_)]

    # ------------------------------------------------------------ fit
    def _fit_stream(self, X, y=None):
        prepared = self._prepare(X, reset=True)
        windows = self._training_windows(prepared)
        logger.info("%s: fitting on %d windows of %d x %d.", type(self).__name__, len(windows),
                    self.width, self.n_features_in_)
        self._fit_windows(windows)
        self._fit_on_stream(prepared)
        contributions = self._point_contributions(prepared)
        steady = self._steady_rows(prepared)
        y = prepared.in_prepared_order(y)
        scores = contributions.sum(axis=1)
        self._fit_threshold(scores[steady], None if y is None else y[steady])
        self._fit_contribution_calibration(contributions, steady)
        if getattr(self, "combine", "sum") == "max":
            # The calibration above learnt from the rows the summed score deems normal;
            # the limit is then set on the score the detector reports.
            scores = self._combine(contributions)
            self._fit_threshold(scores[steady], None if y is None else y[steady])
        return self

    def _combine(self, contributions: np.ndarray) -> np.ndarray:
        """One score per row from its channels' contributions (see ``combine``)."""
        if getattr(self, "combine", "sum") == "max":
            return self._calibrated(contributions).max(axis=1)
        return contributions.sum(axis=1)

    def _fit_contribution_calibration(self, contributions: np.ndarray, steady: np.ndarray,
                                      threshold: float | None = None) -> None:
        """Learn each channel's contribution distribution on the steady training rows.

        Only rows at or below the alarm threshold enter (when at least 10 do), so
        anomalies in the training stream do not widen what counts as typical.
        """
        threshold = self.threshold_ if threshold is None else threshold
        rows = steady & (contributions.sum(axis=1) <= threshold)
        self._fit_feature_calibration(contributions[rows if rows.sum() >= 10 else steady])

    def _fit_on_stream(self, prepared: _Prepared) -> None:
        """Hook after ``_fit_windows``: fit what needs whole training rows (default: nothing)."""

    def _steady_rows(self, prepared: _Prepared) -> np.ndarray:
        """Rows covered by a full ``width`` windows (not within ``width - 1`` of a segment end).

        The threshold is fitted on these rows only: near the ends of the
        training stream a row's score averages (or takes extremes over) fewer
        windows, so it is noisier than any row scored later in a long stream,
        and its extremes would inflate the limit. Falls back to every row when
        the training stream is too short to have ``2 * width`` steady rows.
        """
        mask = np.zeros(len(prepared.values), dtype=bool)
        for start, stop in prepared.segments:
            mask[start + self.width - 1: stop - self.width + 1] = True
        if mask.sum() < 2 * self.width:
            mask[:] = True
        return mask

    def _fit_threshold(self, train_scores, y):
        if y is not None:
            y = np.asarray(y).ravel()
        self._set_threshold(make_threshold(self.threshold).fit(train_scores, y))

    # ------------------------------------------------------------ scores
    def _point_contributions(self, prepared: _Prepared) -> np.ndarray:
        """Per-row, per-channel contributions, (n_rows, n_channels)."""
        # Scoring always uses stride 1 so every row gets its own windows.
        return self._scored(self._windows_to_rows(prepared, self._window_contributions))

    def feature_scores(self, X: ArrayLike) -> pd.DataFrame:
        """How unusual each channel is at each timestamp, on one scale for all channels.

        Each channel's contribution to the anomaly score, measured against
        the same channel's contributions on the training rows: ``-ln`` of
        the share of training rows where that channel contributed at least
        as much (beyond the 90th percentile an exponential tail, so values
        past anything seen keep growing). 0: as usual as that channel gets;
        ``ln 100 = 4.6``: its 99th percentile. A noisy channel does not lead
        by default; the channel with the largest value is the sensor that is
        off. These do not add up to :meth:`anomaly_score`; the additive
        shares are :meth:`feature_nll`.

        Returns
        -------
        contributions : DataFrame of shape (n_samples, n_channels)
            Non-negative; indexed like ``X`` when ``X`` is a DataFrame.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from aepipe.sensor import WindowedPCA
        >>> t = np.arange(1200)
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"p": np.sin(t / 5), "q": np.cos(t / 7),
        ...                   "vibration": rng.normal(size=1200)})
        >>> det = WindowedPCA(width=8).fit(X.iloc[:800])
        >>> broken = X.iloc[800:].copy()
        >>> broken.iloc[200:230, 1] += 1.0  # channel q jumps
        >>> det.feature_scores(broken).iloc[205:225].idxmax(axis=1).value_counts().idxmax()
        'q'
        """
        check_is_fitted(self)
        prepared = self._prepare(X, reset=False)
        surprise = self._calibrated(self._point_contributions(prepared))
        return pd.DataFrame(prepared.in_input_order(surprise),
                            index=prepared.index, columns=self._channel_names())

    def feature_nll(self, X: ArrayLike) -> pd.DataFrame:
        """Each channel's additive share of each timestamp's anomaly score.

        Rows sum to :meth:`anomaly_score`. Not comparable across channels (a
        noisy channel takes a larger share of every row); use
        :meth:`feature_scores` to find the sensor that is off.

        Returns
        -------
        contributions : DataFrame of shape (n_samples, n_channels)
            Indexed like ``X`` when ``X`` is a DataFrame.

        Examples
        --------
        >>> import numpy as np
        >>> from aepipe.sensor import WindowedPCA
        >>> X = np.random.default_rng(0).normal(size=(300, 3))
        >>> det = WindowedPCA(width=8).fit(X)
        >>> bool(np.allclose(det.feature_nll(X).sum(axis=1), det.anomaly_score(X)))
        True
        """
        check_is_fitted(self)
        prepared = self._prepare(X, reset=False)
        return pd.DataFrame(prepared.in_input_order(self._point_contributions(prepared)),
                            index=prepared.index, columns=self._channel_names())

    def anomaly_score(self, X: ArrayLike) -> np.ndarray:
        """One anomaly score per timestamp (higher = more anomalous).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        prepared = self._prepare(X, reset=False)
        return prepared.in_input_order(self._combine(self._point_contributions(prepared)))

    def reconstruct(self, X: ArrayLike):
        """The model's reconstruction of every timestamp, in X's units (a denoised signal).

        Each row is the mean, over the windows covering it, of that window's
        reconstruction at the row's position.

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_channels), or a DataFrame
            with X's index and channel columns when X is a DataFrame.
        """
        check_is_fitted(self)
        prepared = self._prepare(X, reset=False)
        out = prepared.in_input_order(self._reconstruct_rows(prepared)) * self.scale_ + self.mean_
        if prepared.index is not None:
            return pd.DataFrame(out, index=prepared.index, columns=self._channel_names())
        return out

    def _reconstruct_rows(self, prepared: _Prepared) -> np.ndarray:
        """Per-row reconstruction of a prepared stream, in standardised units."""
        out = np.empty_like(prepared.values)
        for first, last, offset, n_rows, starts, windows, means in self._scoring_blocks(prepared):
            rows = positions_to_points(self._window_reconstruction(windows) + means, starts,
                                       n_rows)
            out[first:last] = rows[first - offset:last - offset]
        return out

    def plot_contributions(self, X: ArrayLike, **kwargs):
        """Plot per-channel contributions over time; see :func:`plot_contributions`."""
        from ._plot import plot_contributions

        return plot_contributions(self, X, **kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = getattr(self, "handle_missing", "error") == "mask"
        return tags
