"""Datasets: seeded synthetic generators and loaders for benchmark files on disk.

Nothing here downloads: the generators are built in, and the loaders read a
local ADBench ``.npz``, ODDS ``.mat`` or SKAB ``.csv`` file.
"""

from ._loaders import load_adbench, load_odds, load_skab
from ._synthetic import SENSOR_ANOMALY_TYPES, make_mixed_table, make_sensor_stream

__all__ = [
    "SENSOR_ANOMALY_TYPES",
    "load_adbench",
    "load_odds",
    "load_skab",
    "make_mixed_table",
    "make_sensor_stream",
]
