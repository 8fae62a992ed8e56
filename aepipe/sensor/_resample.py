"""Optional resampling of an irregularly sampled stream onto a regular clock."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError

__all__ = ["resample_stream"]


def resample_stream(X: pd.DataFrame, freq, *, time_column: str | None = None,
                    series_column: str | None = None, agg: str = "mean",
                    max_fill: int = 2) -> pd.DataFrame:
    """Put an irregularly sampled stream on a regular clock, before a windowed detector.

    The windowed detectors read a window as ``width`` consecutive rows, so
    they assume rows evenly spaced in time: they split the stream at gaps
    longer than ``max_gap_factor`` median steps, but within a segment a
    stream sampled every 1 s here and every 5 s there makes windows that span
    different lengths of time. This optional step makes the clock regular:

    - the time axis is cut into bins of ``freq`` (aligned to ``freq``, left
      edge labels the bin) and each channel is aggregated over the readings in
      a bin (``agg``: ``"mean"``, ``"median"``, ``"last"``, ``"max"``, ``"min"``);
    - runs of at most ``max_fill`` empty bins (a reading or two missed) are
      filled by linear interpolation between their neighbours;
    - longer runs of empty bins are left out, so the detector sees a gap
      there and applies its ``gap_policy`` (by default it splits the stream).

    A reading that is itself missing (NaN) stays out of its bin's
    aggregate; a channel with no reading in a bin that others do fill is
    interpolated over at most ``max_fill`` such bins in a row and left NaN
    beyond (for ``handle_missing="mask"``). Non-numeric columns other than
    ``series_column`` are refused.

    Parameters
    ----------
    X : DataFrame
        Time-ordered or not; its times come from a ``DatetimeIndex`` or from
        ``time_column``. Timezone-aware times stay in their zone.
    freq : str or pandas offset
        The bin width, e.g. ``"1min"`` or ``"500ms"``.
    time_column : str or None, default=None
        Column holding the times; the result then keeps it as a column.
    series_column : str or None, default=None
        Column naming each row's series (a pump, a server): each series is
        resampled on its own and the result keeps the column.
    agg : {"mean", "median", "last", "max", "min"}, default="mean"
    max_fill : int >= 0, default=2
        Longest run of empty bins that is interpolated; 0 fills none.

    Returns
    -------
    resampled : DataFrame
        One row per non-empty (or filled) bin, in time order (per series),
        with the same columns as ``X``.

    Raises
    ------
    DataValidationError
        Times missing or not times, a non-numeric channel, or an unknown
        ``agg``.

    Examples
    --------
    >>> import pandas as pd
    >>> times = pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:00:20",
    ...                         "2024-01-01 00:01:10", "2024-01-01 00:05:00"])
    >>> stream = pd.DataFrame({"p": [1.0, 3.0, 5.0, 9.0]}, index=times)
    >>> resample_stream(stream, "1min")["p"].tolist()  # 00:00, 00:01, then a gap
    [2.0, 5.0, 9.0]
    """
    if agg not in {"mean", "median", "last", "max", "min"}:
        raise DataValidationError(
            f"agg={agg!r} is not an aggregate resample_stream knows; use 'mean', 'median', "
            "'last', 'max' or 'min'.")
    if not isinstance(max_fill, (int, np.integer)) or isinstance(max_fill, bool) \
            or max_fill < 0:
        raise DataValidationError(f"max_fill={max_fill!r} must be an integer >= 0.")
    if not isinstance(X, pd.DataFrame):
        raise DataValidationError(
            "resample_stream needs a DataFrame with a DatetimeIndex or a time_column.")
    if series_column is not None:
        if series_column not in X.columns:
            raise DataValidationError(f"series_column={series_column!r} is not a column of X.")
        parts = [
            _resample_one(part.drop(columns=series_column), freq, time_column, agg, max_fill)
            .assign(**{series_column: key})
            for key, part in X.groupby(series_column, sort=False)
        ]
        return pd.concat(parts)[list(X.columns)] if parts else X.iloc[:0]
    return _resample_one(X, freq, time_column, agg, max_fill)


def _resample_one(X: pd.DataFrame, freq, time_column, agg: str, max_fill: int) -> pd.DataFrame:
    if time_column is not None:
        if time_column not in X.columns:
            raise DataValidationError(f"time_column={time_column!r} is not a column of X.")
        times = pd.to_datetime(X[time_column], errors="coerce")
        values = X.drop(columns=time_column)
    elif isinstance(X.index, pd.DatetimeIndex):
        times, values = X.index.to_series(), X
    else:
        raise DataValidationError(
            "resample_stream needs times: give X a DatetimeIndex or name its time_column.")
    missing = np.flatnonzero(pd.isna(times).to_numpy())
    if len(missing):
        raise DataValidationError(
            f"The time of row {int(missing[0])} is missing (NaT); drop or fix that row "
            "before resampling.")
    for name in values.columns:
        if not pd.api.types.is_numeric_dtype(values[name].dtype):
            raise DataValidationError(
                f"Column {name!r} is not numeric ({values[name].dtype}); resample_stream "
                "aggregates sensor readings only. Drop it, or pass it as series_column.")
    values = values.astype(np.float64).set_axis(pd.DatetimeIndex(times), axis=0)
    binned = getattr(values.sort_index().resample(freq, origin="epoch"), agg)()
    # Runs of empty bins: short ones are interpolated, long ones become gaps.
    empty = binned.isna().all(axis=1).to_numpy()
    run_id = np.cumsum(np.r_[True, empty[1:] != empty[:-1]])
    run_length = pd.Series(run_id).map(pd.Series(run_id).value_counts()).to_numpy()
    dropped = empty & (run_length > max_fill)
    filled = binned.interpolate(method="time", limit=max_fill, limit_area="inside") \
        if max_fill else binned
    result = filled[~dropped]
    if time_column is not None:
        result = result.rename_axis(None).reset_index(names=time_column)[list(X.columns)]
    else:
        result.index.name = X.index.name
    return result
