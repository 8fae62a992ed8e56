"""Pipeline configs: a small, validated JSON format for Pipelines and searches.

Format (every key but ``steps`` optional; unknown keys are errors that name
the key and the allowed ones)::

    {
      "description": "What the pipeline is for.",
      "version": 1,
      "steps": [
        {"name": "detector", "estimator": "Autoencoder",
         "params": {"latent_dim": 4, "max_epochs": 50, "random_state": 0}}
      ],
      "search": {
        "param_grid": [
          {"detector": [{"estimator": "PCADetector"}],
           "detector__n_components": [2, 4]}
        ],
        "scoring": ["anomaly_roc_auc", "anomaly_average_precision"],
        "refit": "anomaly_roc_auc",
        "cv": 3,
        "random_state": 0,
        "n_jobs": null
      }
    }

- ``steps``: the Pipeline, in order; ``estimator`` is a class name from
  :func:`~aepipe.pipelines.available_estimators`; ``name`` defaults to
  ``"detector"`` for the last step and the lower-cased class name otherwise.
- Anywhere a parameter value is expected, ``{"estimator": ..., "params":
  {...}}`` builds an estimator (to swap the detector in a grid, or to wrap one).
- ``search``: turns the Pipeline into a ``GridSearchCV``. ``param_grid`` is a
  dict or a list of dicts of lists, with scikit-learn's ``step__param`` keys;
  ``scoring`` names from :data:`aepipe.scoring.ANOMALY_SCORERS`, the same
  names :func:`aepipe.scoring.get_scorer` takes in Python
  (``anomaly_roc_auc`` and ``anomaly_average_precision`` need labels,
  ``synthetic_anomaly_auc`` does not; scikit-learn's ambiguous ``roc_auc``
  and ``average_precision`` are refused with the right name); ``cv`` is a
  number of shuffled folds seeded by ``random_state``.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from ._errors import ConfigError
from ._factories import DETECTOR_STEP
from ._registry import resolve_estimator

__all__ = [
    "CONFIG_KEYS",
    "SEARCH_KEYS",
    "STEP_KEYS",
    "ConfigError",
    "available_configs",
    "build_from_config",
    "find_config",
    "load_config",
]

#: Allowed top-level keys of a config.
CONFIG_KEYS = ("description", "search", "steps", "version")
#: Allowed keys of one step (and of an ``{"estimator": ...}`` value).
STEP_KEYS = ("estimator", "name", "params")
#: Allowed keys of the ``search`` section.
SEARCH_KEYS = ("cv", "n_jobs", "param_grid", "random_state", "refit", "scoring")

_FORMAT_VERSION = 1


def _config_dirs() -> list[Path]:
    """Where ready-made configs are looked up by name, in order."""
    package = Path(__file__).resolve().parent
    # The repository's top-level pipelines/ folder (source checkout, editable
    # install), then configs shipped inside the package.
    return [package.parents[1] / "pipelines", package / "configs"]


def available_configs() -> dict[str, Path]:
    """Ready-made configs by name (``{"tabular": Path(...), ...}``)."""
    found = {}
    for folder in _config_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                found.setdefault(path.stem, path)
    return found


def find_config(name_or_path) -> Path:
    """The path of a config given as a file path or a ready-made config's name.

    Raises
    ------
    FileNotFoundError
        Neither an existing file nor a known name; the message lists the names.
    """
    path = Path(os.fspath(name_or_path)).expanduser()
    if path.is_file():
        return path
    configs = available_configs()
    name = path.name[:-5] if path.name.endswith(".json") else path.name
    if path.parent == Path(".") and name in configs:
        return configs[name]
    known = ", ".join(sorted(configs)) or "none found"
    raise FileNotFoundError(
        f"Pipeline config {str(name_or_path)!r} is neither a file nor a ready-made config "
        f"name (ready-made: {known})."
    )


def load_config(config) -> dict:
    """Read a config: a dict (returned as is), a JSON file path, or a ready-made name."""
    if isinstance(config, dict):
        return config
    path = find_config(config)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Pipeline config {str(path)!r} is not UTF-8 text.") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Pipeline config {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}."
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"Pipeline config {str(path)!r} must be a JSON object; got {type(data).__name__}."
        )
    return data


def _check_keys(section: dict, allowed, where: str) -> None:
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"Unknown key {key!r} in {where}{hint}; allowed keys: {', '.join(sorted(allowed))}."
            )


def _build_value(value, where: str):
    """A JSON value with ``{"estimator": ...}`` objects turned into estimators."""
    if isinstance(value, dict) and "estimator" in value:
        return _build_estimator(value, where)
    if isinstance(value, list):
        return [_build_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _build_estimator(spec: dict, where: str):
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be an object with an 'estimator' key; got {spec!r}.")
    _check_keys(spec, STEP_KEYS, where)
    if "estimator" not in spec:
        raise ConfigError(f"{where} lacks the required key 'estimator'.")
    try:
        cls = resolve_estimator(spec["estimator"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.params must be an object; got {type(params).__name__}.")
    allowed = sorted(cls().get_params(deep=False))
    for key in params:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"Unknown parameter {key!r} for {cls.__name__} in {where}.params{hint}; "
                f"allowed parameters: {', '.join(allowed)}."
            )
    built = {key: _build_value(value, f"{where}.params.{key}") for key, value in params.items()}
    return cls(**built)


def _build_pipeline(steps, source: str) -> Pipeline:
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{source}: 'steps' must be a non-empty list of step objects.")
    named = []
    for i, spec in enumerate(steps):
        where = f"{source}: steps[{i}]"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be an object; got {spec!r}.")
        estimator = _build_estimator(spec, where)
        default = DETECTOR_STEP if i == len(steps) - 1 else type(estimator).__name__.lower()
        name = spec.get("name", default)
        if not isinstance(name, str) or not name or "__" in name:
            raise ConfigError(f"{where}.name={name!r} must be a non-empty string without '__'.")
        if name in dict(named):
            raise ConfigError(f"{where}.name={name!r} is used by an earlier step.")
        named.append((name, estimator))
    return Pipeline(named)


def _check_grid(pipeline: Pipeline, grid: dict, where: str) -> dict:
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where} must be a non-empty object of parameter lists.")
    built = {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{where}[{key!r}] must be a non-empty list of values; got {values!r}."
            )
        built[key] = _build_value(values, f"{where}[{key!r}]")
    # Replace whole steps first, then check the nested keys against the result.
    probe = clone(pipeline)
    steps = dict(probe.steps)
    for key in sorted(built, key=lambda k: "__" in k):
        allowed = sorted(probe.get_params(deep=True))
        if key not in allowed:
            prefix = key.split("__")[0]
            related = [k for k in allowed if k.startswith(prefix + "__")] if prefix in steps else []
            shown = related or [k for k in allowed if "__" not in k or k.split("__")[0] in steps]
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"Unknown key {key!r} in {where}{hint}; allowed keys: {', '.join(shown)}."
            )
        if "__" not in key:
            probe.set_params(**{key: built[key][0]})
    return built


def _scorer_name(name, where: str) -> str:
    """A registered scorer name (an old one mapped, with a FutureWarning), else a ConfigError."""
    from ..scoring import AMBIGUOUS_SCORER_NAMES, ANOMALY_SCORERS, get_scorer

    if not isinstance(name, str):
        raise ConfigError(f"{where}: a scorer name must be a string; got {name!r}.")
    if name in AMBIGUOUS_SCORER_NAMES:
        raise ConfigError(
            f"{where}: {name!r} is ambiguous (scikit-learn's {name!r} ranks an outlier "
            f"detector the wrong way round); use {AMBIGUOUS_SCORER_NAMES[name]!r}."
        )
    try:
        scorer = get_scorer(name)
    except ValueError:
        raise ConfigError(
            f"{where}: unknown scoring {name!r}; allowed: "
            f"{', '.join(sorted(ANOMALY_SCORERS))}."
        ) from None
    return next(key for key, value in ANOMALY_SCORERS.items() if value is scorer)


def _build_search(pipeline: Pipeline, search: dict, source: str) -> GridSearchCV:
    from ..scoring import get_scorer

    if not isinstance(search, dict):
        raise ConfigError(f"{source}: 'search' must be an object.")
    _check_keys(search, SEARCH_KEYS, f"{source}: search")
    if "param_grid" not in search:
        raise ConfigError(f"{source}: search lacks the required key 'param_grid'.")
    grids = search["param_grid"]
    single = isinstance(grids, dict)
    grids = [grids] if single else grids
    if not isinstance(grids, list) or not grids:
        raise ConfigError(f"{source}: search.param_grid must be an object or a non-empty list.")
    param_grid = [
        _check_grid(pipeline, grid, f"{source}: search.param_grid" + ("" if single else f"[{i}]"))
        for i, grid in enumerate(grids)
    ]
    scoring = search.get("scoring", ["anomaly_roc_auc", "anomaly_average_precision"])
    names = [scoring] if isinstance(scoring, str) else scoring
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{source}: search.scoring must be a name or a non-empty list of names.")
    names = [_scorer_name(name, f"{source}: search.scoring") for name in names]
    refit = _scorer_name(search.get("refit", names[0]), f"{source}: search.refit")
    if refit not in names:
        raise ConfigError(
            f"{source}: search.refit={refit!r} must be one of the scoring names {names}."
        )
    cv = search.get("cv", 3)
    if not isinstance(cv, int) or isinstance(cv, bool) or cv < 2:
        raise ConfigError(f"{source}: search.cv={cv!r} must be an integer >= 2.")
    random_state = search.get("random_state", 0)
    if random_state is not None and (not isinstance(random_state, int) or isinstance(random_state, bool)):
        raise ConfigError(f"{source}: search.random_state={random_state!r} must be an integer or null.")
    n_jobs = search.get("n_jobs")
    if n_jobs is not None and (not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0):
        raise ConfigError(f"{source}: search.n_jobs={n_jobs!r} must be a non-zero integer or null.")
    return GridSearchCV(
        pipeline,
        param_grid=param_grid,
        scoring={name: get_scorer(name) for name in names},
        refit=refit,
        cv=KFold(n_splits=cv, shuffle=True, random_state=random_state),
        n_jobs=n_jobs,
        error_score="raise",
    )


def build_from_config(config):
    """Build the Pipeline (or GridSearchCV) a config describes.

    Parameters
    ----------
    config : dict, str or Path
        The config itself, a JSON file, or the name of a ready-made config
        (``"tabular"``, ``"sensor"``, ``"autoencoder"``, ``"ae_vs_pca_search"``). The
        format is described in this module's docstring.

    Returns
    -------
    model : Pipeline or GridSearchCV
        Unfitted. A GridSearchCV when the config has a ``search`` section.

    Raises
    ------
    ConfigError
        An unknown key, estimator or parameter (the message names it and the
        allowed ones), or a value of the wrong kind.
    FileNotFoundError
        A path that does not exist and is no ready-made config's name.

    Examples
    --------
    >>> from aepipe.pipelines import build_from_config
    >>> pipe = build_from_config({"steps": [{"estimator": "PCADetector"}]})
    >>> list(pipe.named_steps)
    ['detector']
    """
    source = "config" if isinstance(config, dict) else f"config {str(config)!r}"
    data = load_config(config)
    _check_keys(data, CONFIG_KEYS, f"{source} (top level)")
    version = data.get("version", _FORMAT_VERSION)
    if version != _FORMAT_VERSION:
        raise ConfigError(f"{source}: version={version!r} is not supported; use {_FORMAT_VERSION}.")
    if "steps" not in data:
        raise ConfigError(f"{source} lacks the required key 'steps'.")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: 'description' must be a string.")
    pipeline = _build_pipeline(data["steps"], source)
    if "search" in data:
        return _build_search(pipeline, data["search"], source)
    return pipeline
