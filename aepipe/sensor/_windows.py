"""Windowing of time-ordered data: sliding windows, segments, window-to-point rules.

Leaf code (NumPy/pandas only).

Gap policy
----------
A *gap* is a step between consecutive timestamps longer than
``max_gap_factor`` times the median step. Timestamps must be strictly
increasing (unsorted or duplicated timestamps always raise). Gaps are handled
as ``gap_policy`` says, never silently:

- ``"split"``: the stream is cut into segments at every gap; windows never
  cross a gap. A segment shorter than the window is scored (and
  reconstructed) with the context it has: it is mirrored at both ends to one
  window's length. Training uses only segments of at least one window; a
  training stream with none raises.
- ``"raise"``: any gap raises :class:`~aepipe.exceptions.DataValidationError`.
- ``"ignore"``: treat the rows as regularly sampled (an explicit opt-in).

Arrays (no time information) are taken as regularly sampled.

Window-to-point rules
---------------------
Window ``i`` covers rows ``starts[i] .. starts[i] + width - 1`` of its segment.
A row's score is, over the windows covering it:

- ``"mean"``: the mean of their scores;
- ``"max"``: the maximum of their scores;
- ``"min"``: the minimum of their scores, so a row is above a threshold only
  when *every* window covering it is (SKAB's Conv-AE rule). An anomaly that
  fills a window is kept while a brief excursion does not spread its alarm over
  the ``width - 1`` normal rows around it;
- ``"last"``: the score of the window that *ends* at the row (causal: uses
  only the past); the first ``width - 1`` rows of a segment, which no window
  ends at, take the score of the first window.

With ``stride > 1`` a final window is added so the segment's last row is
always covered.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import DataValidationError

POINT_RULES = ("mean", "max", "min", "last")
GAP_POLICIES = ("split", "raise", "ignore")


def window_starts(n_rows: int, width: int, stride: int = 1) -> np.ndarray:
    """Start rows of sliding windows of ``width`` rows every ``stride`` rows.

    The last row is always covered: when ``stride`` does not land on
    ``n_rows - width`` a final window starting there is added.

    Returns
    -------
    starts : ndarray of int, shape (n_windows,)
    """
    if width < 1 or stride < 1:
        raise ValueError(f"width={width} and stride={stride} must be positive integers.")
    if n_rows < width:
        raise DataValidationError(
            f"A segment of {n_rows} rows is shorter than the window width={width}."
        )
    starts = np.arange(0, n_rows - width + 1, stride)
    if starts[-1] != n_rows - width:
        starts = np.r_[starts, n_rows - width]
    return starts


def sliding_windows(values: np.ndarray, width: int, stride: int = 1) -> np.ndarray:
    """Windows of a ``(n_rows, n_channels)`` array, ``(n_windows, width, n_channels)``.

    Examples
    --------
    >>> import numpy as np
    >>> sliding_windows(np.arange(10.0)[:, None], width=4, stride=3)[:, :, 0]
    array([[0., 1., 2., 3.],
           [3., 4., 5., 6.],
           [6., 7., 8., 9.]])
    """
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    starts = window_starts(len(values), width, stride)
    view = np.lib.stride_tricks.sliding_window_view(values, width, axis=0)
    # sliding_window_view puts the window axis last: (n, channels, width).
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))


def windows_to_points(window_values: np.ndarray, starts: np.ndarray, width: int, n_rows: int,
                      rule: str = "mean") -> np.ndarray:
    """Map per-window values to per-row values by ``rule`` (see module docs).

    Parameters
    ----------
    window_values : ndarray of shape (n_windows,) or (n_windows, k)
    starts : ndarray of int, shape (n_windows,)
    width, n_rows : int
    rule : {"mean", "max", "min", "last"}

    Returns
    -------
    point_values : ndarray of shape (n_rows,) or (n_rows, k)

    Examples
    --------
    >>> windows_to_points(np.array([1.0, 3.0]), np.array([0, 1]), 2, 3, "mean")
    array([1., 2., 3.])
    >>> windows_to_points(np.array([1.0, 3.0]), np.array([0, 1]), 2, 3, "last")
    array([1., 1., 3.])
    """
    if rule not in POINT_RULES:
        raise ValueError(f"rule={rule!r} must be one of {POINT_RULES}.")
    values = np.asarray(window_values, dtype=np.float64)
    squeeze = values.ndim == 1
    if squeeze:
        values = values[:, None]
    starts = np.asarray(starts)
    out_shape = (n_rows, values.shape[1])
    if rule == "last":
        ends = starts + width - 1
        index = np.searchsorted(ends, np.arange(n_rows), side="right") - 1
        out = values[np.clip(index, 0, len(starts) - 1)]
    elif rule == "mean":
        placed = np.zeros(out_shape)
        np.add.at(placed, starts, values)
        # Counts are integers, so a difference array and a cumulative sum are exact here.
        count = np.zeros(n_rows + 1, dtype=np.int64)
        np.add.at(count, starts, 1)
        np.add.at(count, np.minimum(starts + width, n_rows), -1)
        count = np.cumsum(count)[:n_rows]
        out = _covering_sums(placed, width) / count[:, None]
    elif rule == "min":
        out = np.full(out_shape, np.inf)
        for offset in range(width):
            np.minimum.at(out, starts + offset, values)
    else:
        out = np.full(out_shape, -np.inf)
        for offset in range(width):
            np.maximum.at(out, starts + offset, values)
    return out[:, 0] if squeeze else out


def _covering_sums(placed: np.ndarray, width: int) -> np.ndarray:
    """``out[p] = placed[p - width + 1] + ... + placed[p]`` (rows before 0 left out).

    Only the terms of a row's own range are ever added: no prefix sum is
    subtracted from another, so one huge value (a window scored 1e300) cannot
    wipe out the precision of rows outside its range, as a cumulative sum and
    a difference would (van Herk / Gil-Werman): the rows are cut into blocks
    of ``width``; a range is the tail of one block (a suffix sum) and the head
    of the next (a prefix sum), or exactly one block. O(n_rows) time and memory.

    Examples
    --------
    >>> _covering_sums(np.array([[1.0], [1e300], [2.0], [3.0], [4.0]]), 2)[:, 0].tolist()
    [1.0, 1e+300, 1e+300, 5.0, 7.0]
    """
    n_rows, k = placed.shape
    # Row p's range is rows p .. p + width - 1 of ``padded`` (width - 1 zeros in front).
    n_blocks = -(-(n_rows + width - 1) // width)
    padded = np.zeros((n_blocks * width, k))
    padded[width - 1:width - 1 + n_rows] = placed
    blocks = padded.reshape(n_blocks, width, k)
    prefix = np.cumsum(blocks, axis=1).reshape(-1, k)
    suffix = np.cumsum(blocks[:, ::-1], axis=1)[:, ::-1].reshape(-1, k)
    first = np.arange(n_rows)
    out = prefix[first + width - 1]
    split = first % width != 0  # the range straddles two blocks
    out[split] += suffix[first[split]]
    return out


def positions_to_points(position_values: np.ndarray, starts: np.ndarray, n_rows: int
                        ) -> np.ndarray:
    """Overlap-average per-position window values back onto rows.

    Parameters
    ----------
    position_values : ndarray of shape (n_windows, width, k)

    Returns
    -------
    point_values : ndarray of shape (n_rows, k)
        Row r gets the mean, over the windows covering it, of the value each
        window has at r's position (used for reconstructions).
    """
    n_windows, width, k = position_values.shape
    total = np.zeros((n_rows, k))
    count = np.zeros(n_rows)
    for offset in range(width):
        np.add.at(total, starts + offset, position_values[:, offset, :])
        np.add.at(count, starts + offset, 1.0)
    return total / count[:, None]


def find_segments(times, *, gap_policy: str = "split", max_gap_factor: float = 3.0
                  ) -> list[tuple[int, int]]:
    """Half-open row ranges ``(start, stop)`` of gap-free segments.

    Parameters
    ----------
    times : array-like of datetime64 or numbers, or None
        ``None`` means regularly sampled rows (one segment).
    gap_policy : {"split", "raise", "ignore"}
    max_gap_factor : float
        A step longer than ``max_gap_factor`` times the median step is a gap.

    Examples
    --------
    >>> find_segments(np.array([0, 1, 2, 10, 11, 12]))
    [(0, 3), (3, 6)]
    """
    if gap_policy not in GAP_POLICIES:
        raise ValueError(f"gap_policy={gap_policy!r} must be one of {GAP_POLICIES}.")
    if times is None:
        return None
    times = np.asarray(times)
    n = len(times)
    if n < 2:
        return [(0, n)]
    if np.issubdtype(times.dtype, np.datetime64):
        if np.isnat(times).any():
            raise DataValidationError(
                f"The time index has a missing timestamp (NaT) at row {int(np.isnat(times).argmax())}."
            )
        steps = np.diff(times).astype("timedelta64[ns]").astype(np.float64)
    else:
        try:
            times = times.astype(np.float64)
        except (TypeError, ValueError):
            raise DataValidationError(
                f"Timestamps must be datetimes or numbers; got values of type "
                f"{type(times[0]).__name__} (e.g. {times[0]!r})."
            ) from None
        if np.isnan(times).any():
            raise DataValidationError(
                f"The time column has a missing value (NaN) at row {int(np.isnan(times).argmax())}."
            )
        steps = np.diff(times)
    if not (steps > 0).all():
        row = int(np.argmax(steps <= 0)) + 1
        raise DataValidationError(
            f"Timestamps must be strictly increasing; row {row} is not later than row {row - 1} "
            "(sort the data and drop duplicated timestamps first)."
        )
    if gap_policy == "ignore":
        return [(0, n)]
    median = float(np.median(steps))
    gap_rows = np.flatnonzero(steps > max_gap_factor * median) + 1
    if len(gap_rows) and gap_policy == "raise":
        row = int(gap_rows[0])
        raise DataValidationError(
            f"Found {len(gap_rows)} gap(s) longer than max_gap_factor={max_gap_factor} times the "
            f"median step; the first is before row {row} ({steps[row - 1] / median:.1f} median "
            "steps). Use gap_policy='split' to score each gap-free segment separately, or "
            "resample the data."
        )
    bounds = [0, *gap_rows.tolist(), n]
    return list(zip(bounds[:-1], bounds[1:]))
