"""Sensor streams: windowed detectors with per-timestamp scores, channel contributions
and denoised signals.

Windowing, the window-to-point rules and the gap policy are documented in
:mod:`aepipe.sensor._windows` and summarised here:

- windows of ``width`` rows slide by ``stride`` (scoring slides by one);
- ``point_rule``: a timestamp's score is the mean (default) or max of the
  scores of the windows covering it, or the score of the window ending at it;
- ``gap_policy``: steps longer than ``max_gap_factor`` median steps split the
  stream into segments (default), raise, or are ignored by explicit choice;
  a segment shorter than the window is scored with the context it has
  (mirrored to one window); unsorted or duplicated timestamps always raise;
- many series in one long-format frame (a column naming each row's series):
  ``series_column=`` scores them all with one shared model, windows never
  crossing from one series into another; :class:`PerSeriesDetector` fits one
  model per series;
- an irregularly sampled stream can be put on a regular clock first
  (:func:`resample_stream`: bins of a fixed width, short holes interpolated,
  long ones left as gaps).
"""

from ._base import BaseWindowedDetector, series_column_of, window_context
from ._default import make_default_sensor_denoiser, make_default_sensor_detector
from ._neural import (
    WindowedAutoencoder,
    WindowedConvAutoencoder,
    WindowedDenoisingAutoencoder,
)
from ._pca import WindowedPCA
from ._plot import plot_contributions
from ._resample import resample_stream
from ._series import PerSeriesDetector
from ._windows import find_segments, sliding_windows, window_starts, windows_to_points

__all__ = [
    "BaseWindowedDetector",
    "PerSeriesDetector",
    "WindowedAutoencoder",
    "WindowedConvAutoencoder",
    "WindowedDenoisingAutoencoder",
    "WindowedPCA",
    "find_segments",
    "make_default_sensor_denoiser",
    "make_default_sensor_detector",
    "plot_contributions",
    "resample_stream",
    "series_column_of",
    "sliding_windows",
    "window_context",
    "window_starts",
    "windows_to_points",
]
