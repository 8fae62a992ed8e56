"""A safe model file: JSON config plus torch state dicts, no pickle.

``pickle`` and ``joblib`` (and therefore ``mlflow.sklearn`` and any
``joblib.dump`` of an estimator) execute code while loading: only load such
files from sources you trust. :func:`save` / :func:`load` write and read a
format that is loaded without unpickling anything:

- ``config.json``: format version, library versions, the estimator class (from
  a fixed allow-list), its parameters, the fitted column layout, ``offset_``
  and the other learned scalars, and the SHA-256 and size of every other member;
- ``weights.pt``: the network's ``state_dict``, read back with
  ``torch.load(..., weights_only=True)`` (tensors and plain containers only).

Both live in one zip file, written to a temporary file and moved into place
(``os.replace``), so a crash never leaves a half-written model behind. A
truncated or tampered file, an unknown class, or a missing member raises
:class:`~aepipe.exceptions.ModelFileError` with what was wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ._version import __version__
from .exceptions import ModelFileError

logger = logging.getLogger(__name__)

__all__ = ["load", "save"]

FORMAT = "aepipe-model"
FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "weights.pt"
HISTORY = "history.json"
_MAX_CONFIG_BYTES = 64 * 2**20

# Only these classes are ever constructed from a file (never a name looked up freely).
_CLASSES = (
    "Autoencoder",
    "ContractiveAutoencoder",
    "DenoisingAutoencoder",
    "SparseAutoencoder",
    "VariationalAutoencoder",
    "AutoencoderEnsemble",
)
# Learned arrays of the ensemble (the recommended default), saved as JSON numbers.
_ENSEMBLE_ARRAYS = ("robust_center_", "robust_scale_", "noise_var_", "code_center_",
                    "code_scale_", "score_scale_")
_ENSEMBLE_INTS = ("hidden_size_", "batch_size_", "max_epochs_")
# Parameters that hold training-time objects, not part of a saved model.
_NOT_SAVED = {"callbacks": None, "checkpoint_dir": None}


def _plain(value):
    """numpy scalars/arrays to JSON-able Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _params_to_json(estimator) -> dict:
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        if name in _NOT_SAVED:
            value = _NOT_SAVED[name]
        elif name == "random_state" and not (value is None or isinstance(value, (int, np.integer))):
            value = None  # a RandomState's stream is not part of the fitted model
        elif name == "feature_types" and value is not None:
            value = {"__pairs__": [[_plain(k), v] for k, v in value.items()]}
        elif name == "hidden_sizes" and not isinstance(value, str):
            value = {"__tuple__": [int(v) for v in value]}
        params[name] = _plain(value)
    return params


def _params_from_json(params: dict) -> dict:
    out = {}
    for name, value in params.items():
        if isinstance(value, dict) and "__pairs__" in value:
            value = {k: v for k, v in value["__pairs__"]}
        elif isinstance(value, dict) and "__tuple__" in value:
            value = tuple(value["__tuple__"])
        out[name] = value
    return out


def _layout_to_json(layout) -> dict:
    return {
        "standardize": bool(layout.standardize),
        "numeric_only": bool(layout.numeric_only),
        "center": _plain(np.asarray(layout.center, dtype=np.float64)),
        "scale": _plain(np.asarray(layout.scale, dtype=np.float64)),
        "columns": [
            {"name": c.name, "kind": c.kind, "start": c.start, "stop": c.stop,
             "categories": [_plain(v) for v in c.categories],
             "ordered_categorical": c.ordered_categorical,
             "was_categorical_dtype": c.was_categorical_dtype}
            for c in layout.columns
        ],
    }


def _layout_from_json(data: dict):
    from ._tabular import Column, TabularLayout

    columns = [Column(c["name"], c["kind"], int(c["start"]), int(c["stop"]),
                      tuple(c["categories"]), bool(c["ordered_categorical"]),
                      bool(c["was_categorical_dtype"])) for c in data["columns"]]
    return TabularLayout(
        columns=columns, standardize=bool(data["standardize"]),
        center=np.asarray(data["center"], dtype=np.float64),
        scale=np.asarray(data["scale"], dtype=np.float64),
        numeric_only=bool(data["numeric_only"]),
    )


def _check_savable(estimator) -> None:
    from sklearn.utils.validation import check_is_fitted

    name = type(estimator).__name__
    if name not in _CLASSES or type(estimator).__module__.split(".")[0] != "aepipe":
        raise TypeError(
            f"aepipe.save supports the autoencoder family {list(_CLASSES)}, got {name}. "
            "Use joblib.dump for other objects (pickle: load such files only from trusted "
            "sources, loading executes code)."
        )
    check_is_fitted(estimator)


def _is_ensemble(estimator) -> bool:
    return type(estimator).__name__ == "AutoencoderEnsemble"


def _model_state(estimator) -> dict:
    """The class-specific learned sizes and statistics, as JSON values."""
    if _is_ensemble(estimator):
        return {
            "latent_dims_": [int(k) for k in estimator.latent_dims_],
            **{name: int(getattr(estimator, name)) for name in _ENSEMBLE_INTS},
            **{name: _plain(np.asarray(getattr(estimator, name), dtype=np.float64))
               for name in _ENSEMBLE_ARRAYS},
        }
    return {
        "hidden_sizes_": [int(h) for h in estimator.hidden_sizes_],
        "latent_dim_": int(estimator.latent_dim_),
        "score_seed": int(estimator._score_seed),
    }


def _restore_model_state(estimator, fitted: dict) -> None:
    if _is_ensemble(estimator):
        estimator.latent_dims_ = tuple(int(k) for k in fitted["latent_dims_"])
        for name in _ENSEMBLE_INTS:
            setattr(estimator, name, int(fitted[name]))
        for name in _ENSEMBLE_ARRAYS:
            setattr(estimator, name, np.asarray(fitted[name], dtype=np.float64))
        return
    estimator.hidden_sizes_ = tuple(int(h) for h in fitted["hidden_sizes_"])
    estimator.latent_dim_ = int(fitted["latent_dim_"])
    estimator._score_seed = int(fitted["score_seed"])


def save(estimator, path) -> Path:
    """Write a fitted autoencoder to ``path`` in aepipe's safe model format.

    Parameters
    ----------
    estimator : fitted Autoencoder (or one of its subclasses) or AutoencoderEnsemble
        (:func:`aepipe.make_default_detector`)
    path : str or path-like
        The zip file to write; replaced atomically if it exists.

    Returns
    -------
    path : Path

    Notes
    -----
    Unlike pickle/joblib, loading the file with :func:`load` executes no code
    from it. ``callbacks`` and ``checkpoint_dir`` (training-time settings) are
    not saved; the training history is.

    Examples
    --------
    >>> import numpy as np, aepipe, tempfile, os
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> ae = aepipe.Autoencoder(max_epochs=2, random_state=0).fit(X)
    >>> path = aepipe.save(ae, os.path.join(tempfile.mkdtemp(), "model.zip"))
    >>> bool((aepipe.load(path).score_samples(X) == ae.score_samples(X)).all())
    True
    """
    import sklearn
    import torch

    _check_savable(estimator)
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in estimator.net_.module_.state_dict().items()}
    torch.save(state, buffer)
    members = {WEIGHTS: buffer.getvalue()}
    history = getattr(estimator.net_, "history_", None)
    if history is not None:
        members[HISTORY] = json.dumps(history.to_list()).encode()
    fitted = {
        "offset_": float(estimator.offset_),
        "n_features_in_": int(estimator.n_features_in_),
        "feature_names_in_": (None if not hasattr(estimator, "feature_names_in_")
                              else [str(n) for n in estimator.feature_names_in_]),
        "device_": str(estimator.device_),
        "layout_": _layout_to_json(estimator.layout_),
        **_model_state(estimator),
    }
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": {"aepipe": __version__, "torch": torch.__version__,
                     "scikit-learn": sklearn.__version__},
        "class": type(estimator).__name__,
        "params": _params_to_json(estimator),
        "fitted": fitted,
        "members": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                    for name, data in members.items()},
    }
    try:
        config_bytes = json.dumps(config, indent=1, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"The estimator cannot be saved in the safe format: {error}. Category values must "
            "be strings, numbers or booleans."
        ) from error
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(CONFIG, config_bytes)
                for name, data in members.items():
                    archive.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_member(archive, name: str, path, limit: int | None = None) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(
            f"Model file {str(path)!r} has no {name!r}; it is truncated or not an aepipe model. "
            "Save it again with aepipe.save."
        ) from None
    if limit is not None and info.file_size > limit:
        raise ModelFileError(f"Model file {str(path)!r}: {name!r} is implausibly large.")
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ModelFileError(
            f"Model file {str(path)!r}: {name!r} cannot be read ({error}); the file is "
            "truncated or corrupted."
        ) from None


def load(path, *, device: str | None = None):
    """Load a model written by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
    device : str or None, default=None
        Where to put the network; ``None`` uses the saved device when it is
        available, else the CPU.

    Returns
    -------
    estimator : fitted Autoencoder (or subclass) or AutoencoderEnsemble

    Raises
    ------
    ModelFileError
        The file is missing, not a zip, truncated, tampered with (a member's
        hash or size differs from the config), names an unknown class or
        parameter, or misses the weights.
    """
    from . import estimators

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model file {str(path)!r} does not exist.")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ModelFileError(
            f"Model file {str(path)!r} is not a readable aepipe model ({error}); it is "
            "truncated, corrupted or of another format."
        ) from None
    with archive:
        try:
            config = json.loads(_read_member(archive, CONFIG, path, _MAX_CONFIG_BYTES))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelFileError(
                f"Model file {str(path)!r} has an invalid {CONFIG} ({error})."
            ) from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ModelFileError(f"Model file {str(path)!r} is not an aepipe model file.")
        if config.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(
                f"Model file {str(path)!r} has format version {config.get('format_version')!r}; "
                f"this aepipe ({__version__}) reads version {FORMAT_VERSION}."
            )
        members = {}
        for name, expected in dict(config.get("members") or {}).items():
            data = _read_member(archive, name, path)
            if len(data) != expected.get("size") or (
                hashlib.sha256(data).hexdigest() != expected.get("sha256")
            ):
                raise ModelFileError(
                    f"Model file {str(path)!r}: {name!r} does not match the size/SHA-256 in "
                    f"{CONFIG}; the file was modified or damaged."
                )
            members[name] = data
    if WEIGHTS not in members:
        raise ModelFileError(f"Model file {str(path)!r} lists no {WEIGHTS!r}.")
    class_name = config.get("class")
    if class_name not in _CLASSES:
        raise ModelFileError(
            f"Model file {str(path)!r} names the class {class_name!r}, which is not one aepipe "
            f"loads ({list(_CLASSES)})."
        )
    try:
        return _build(getattr(estimators, class_name), config, members, device)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelFileError(
            f"Model file {str(path)!r} cannot be rebuilt into a {class_name} "
            f"({type(error).__name__}: {error})."
        ) from None


def _build(cls, config, members, device):
    import torch
    from skorch.history import History

    from .estimators._autoencoders import resolve_device

    params = _params_from_json(config["params"])
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        raise ModelFileError(f"The model file sets unknown parameters {unknown} of {cls.__name__}.")
    estimator = cls(**params)
    fitted = config["fitted"]
    saved_device = fitted["device_"]
    if device is None:
        device = saved_device
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            logger.info("Model saved on %s; loading it on the CPU.", device)
            device = "cpu"
    estimator.device_ = resolve_device(device)
    estimator.layout_ = _layout_from_json(fitted["layout_"])
    _restore_model_state(estimator, fitted)
    estimator.n_features_in_ = int(fitted["n_features_in_"])
    if fitted.get("feature_names_in_") is not None:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    try:
        state = torch.load(io.BytesIO(members[WEIGHTS]), map_location=estimator.device_,
                           weights_only=True)
    except Exception as error:  # the unpickler raises many types on bad data
        raise ModelFileError(f"The weights cannot be read ({error}).") from None
    if _is_ensemble(estimator):
        net = estimator._make_net(1)
    else:
        net = estimator._make_net(1, None)
        net.mask_missing = estimator.handle_missing == "mask"
    net.initialize()
    net.module_.load_state_dict(state)
    net.train_split = None
    if HISTORY in members:
        net.history_ = History(json.loads(members[HISTORY]))
    estimator.net_ = net
    estimator.offset_ = float(fitted["offset_"])
    return estimator
