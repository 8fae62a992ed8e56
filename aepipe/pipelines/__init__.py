"""Factory functions that build scikit-learn Pipelines and searches, and config files.

A pipeline config is a JSON file (or a dict) in the format documented in
:func:`build_from_config`; ready-made ones live in the repository's
``pipelines/`` folder (also shipped in the package) and are found by name:
``"tabular"`` (:func:`aepipe.make_default_detector`, the CLI's default) and
``"sensor"`` (:func:`aepipe.make_default_sensor_detector`).
"""

from ._config import (
    CONFIG_KEYS,
    SEARCH_KEYS,
    STEP_KEYS,
    ConfigError,
    available_configs,
    build_from_config,
    find_config,
    load_config,
)
from ._factories import (
    AE_FAMILY,
    DETECTOR_STEP,
    describe_candidate,
    make_ae_vs_pca_search,
    make_detector_pipeline,
    search_leaderboard,
)
from ._registry import available_estimators, resolve_estimator

__all__ = [
    "AE_FAMILY",
    "CONFIG_KEYS",
    "DETECTOR_STEP",
    "SEARCH_KEYS",
    "STEP_KEYS",
    "ConfigError",
    "available_configs",
    "available_estimators",
    "build_from_config",
    "describe_candidate",
    "find_config",
    "load_config",
    "make_ae_vs_pca_search",
    "make_detector_pipeline",
    "resolve_estimator",
    "search_leaderboard",
]
