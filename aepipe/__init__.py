"""aepipe: anomaly detection and denoising with autoencoders, the scikit-learn way.

Public names are imported lazily so ``import aepipe`` is fast and imports
neither torch nor MLflow; they load on first use.
"""

from importlib import import_module

from ._version import __version__

_LAZY = {
    "Autoencoder": "aepipe.estimators",
    "AutoencoderEnsemble": "aepipe.estimators",
    "CodeIndex": "aepipe.retrieval",
    "ContractiveAutoencoder": "aepipe.estimators",
    "Denoiser": "aepipe.estimators",
    "DenoisingAutoencoder": "aepipe.estimators",
    "PCADetector": "aepipe.estimators",
    "SparseAutoencoder": "aepipe.estimators",
    "VariationalAutoencoder": "aepipe.estimators",
    "WindowedAutoencoder": "aepipe.sensor",
    "WindowedConvAutoencoder": "aepipe.sensor",
    "WindowedDenoisingAutoencoder": "aepipe.sensor",
    "WindowedPCA": "aepipe.sensor",
    "anomaly_average_precision": "aepipe.scoring",
    "anomaly_roc_auc": "aepipe.scoring",
    "build_from_config": "aepipe.pipelines",
    "explain": "aepipe.scoring",
    "load_adbench": "aepipe.datasets",
    "load_odds": "aepipe.datasets",
    "load_skab": "aepipe.datasets",
    "make_ae_vs_pca_search": "aepipe.pipelines",
    "make_mixed_table": "aepipe.datasets",
    "make_sensor_stream": "aepipe.datasets",
    "load": "aepipe._persistence",
    "make_default_sensor_detector": "aepipe.sensor",
    "make_default_sensor_denoiser": "aepipe.sensor",
    "make_default_detector": "aepipe.estimators",
    "plot_codes": "aepipe.estimators",
    "save": "aepipe._persistence",
    "score_frame": "aepipe.scoring",
    "synthetic_anomaly_auc": "aepipe.scoring",
    "top_contributing_columns": "aepipe.scoring",
}
# Subpackages reachable as attributes after a plain ``import aepipe``
# (``aepipe.pipelines.build_from_config(...)``), also imported on first use.
_SUBPACKAGES = ("datasets", "distributed", "estimators", "exceptions", "nets", "nn",
                "pipelines", "retrieval", "scoring", "sensor", "thresholds", "tracking")

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        module = import_module(f"aepipe.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'aepipe' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))
