"""Estimator names a config may use, resolved lazily.

aepipe's own estimators are looked up through ``aepipe``'s lazy public names
and, when it is installed, the ``aepipe.sensor`` module; neither is imported
until a config names one of them, so estimators added later (the sensor
module) are found without changing this file. A few scikit-learn
preprocessing steps and baselines are allowed by name as well.
"""

from __future__ import annotations

import difflib
from importlib import import_module

from ._errors import ConfigError

__all__ = ["available_estimators", "resolve_estimator"]

# Optional aepipe modules whose public classes a config may name.
_OPTIONAL_MODULES = ("aepipe.sensor",)

_SKLEARN = {
    "IsolationForest": "sklearn.ensemble",
    "LocalOutlierFactor": "sklearn.neighbors",
    "MinMaxScaler": "sklearn.preprocessing",
    "PCA": "sklearn.decomposition",
    "RobustScaler": "sklearn.preprocessing",
    "SimpleImputer": "sklearn.impute",
    "StandardScaler": "sklearn.preprocessing",
}


def _optional_module(name):
    try:
        return import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):  # the module itself is absent
            return None
        raise


def _aepipe_names() -> dict[str, str]:
    import aepipe

    names = {name: "aepipe" for name in aepipe._LAZY if name[:1].isupper()}
    for module_name in _OPTIONAL_MODULES:
        module = _optional_module(module_name)
        if module is not None:
            for name in getattr(module, "__all__", []):
                if name[:1].isupper() and not name.startswith("Base"):
                    names.setdefault(name, module_name)
    return names


def available_estimators() -> list[str]:
    """Estimator class names a pipeline config may use, sorted."""
    return sorted({**_SKLEARN, **_aepipe_names()})


def resolve_estimator(name: str):
    """The estimator class a config names.

    Parameters
    ----------
    name : str
        A class name from :func:`available_estimators` (``"Autoencoder"``,
        ``"PCADetector"``, ``"StandardScaler"`` ...).

    Returns
    -------
    cls : type

    Raises
    ------
    ValueError
        An unknown name; the message lists the known ones and the closest match.
    """
    if not isinstance(name, str):
        raise ConfigError(f"An estimator name must be a string; got {name!r}.")
    modules = {**_SKLEARN, **_aepipe_names()}
    if name not in modules:
        known = sorted(modules)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Unknown estimator {name!r}.{hint} Known estimators: {', '.join(known)}."
        )
    return getattr(import_module(modules[name]), name)
