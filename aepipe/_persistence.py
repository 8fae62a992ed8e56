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
  A windowed (sensor) detector stores each of its nets' state dicts there
  (``net0.*``, ``net1.*``, ...) and its learned arrays (``array.*``: channel
  scaling, PCA components, threshold state) as tensors.

Both live in one zip file, written to a temporary file and moved into place
(``os.replace``), so a crash never leaves a half-written model behind. The
zip's comment holds the SHA-256 of ``config.json`` (format version 2), so an
edit anywhere in the file -- the config included -- is detected; a member's
size is checked against the config before it is decompressed, within a hard
cap. Any damaged, truncated or tampered file, an unknown class, or a missing
member raises :class:`~aepipe.exceptions.ModelFileError` with what was wrong.
Files of format version 1 (aepipe before the config checksum) still load,
with a warning that edits to their config cannot be detected.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ._files import default_file_mode
from ._version import __version__
from .exceptions import ModelFileError

logger = logging.getLogger(__name__)

__all__ = ["load", "save"]

FORMAT = "aepipe-model"
FORMAT_VERSION = 2  # 2: the zip comment holds config.json's SHA-256
_READABLE_VERSIONS = (1, 2)
_CONFIG_HASH = b"aepipe-config-sha256:"
# No member is decompressed beyond this, nor beyond this many times its compressed size
# (tensors of trained weights hardly compress; a zip bomb compresses a thousandfold).
_MAX_MEMBER_BYTES = 8 * 2**30
_MAX_EXPANSION = 200
_MIN_EXPANSION_BYTES = 2**20
CONFIG = "config.json"
WEIGHTS = "weights.pt"
HISTORY = "history.json"
_MAX_CONFIG_BYTES = 64 * 2**20

# Only these classes are ever constructed from a file (never a name looked up freely).
_TABULAR = (
    "Autoencoder",
    "ContractiveAutoencoder",
    "DenoisingAutoencoder",
    "SparseAutoencoder",
    "VariationalAutoencoder",
    "AutoencoderEnsemble",
)
_WINDOWED = (
    "WindowedAutoencoder",
    "WindowedConvAutoencoder",
    "WindowedDenoisingAutoencoder",
    "WindowedPCA",
)
_CLASSES = _TABULAR + _WINDOWED
# A retrieval index: its encoder (a nested model file), its codes and ids (.npy, no pickle).
_INDEXES = ("CodeIndex",)
ENCODER = "encoder.aepipe"
CODES = "codes.npy"
IDS = "ids.npy"
_LEARNED_NAME = re.compile(r"_?[a-z][a-z0-9_]*")
# A windowed detector's attributes stored as weights (nets) or objects of their own.
_WINDOWED_OBJECTS = ("nets_", "net_", "pca_", "threshold_object_")
# Learned arrays of the ensemble (the recommended default), saved as JSON numbers.
_ENSEMBLE_ARRAYS = ("robust_center_", "robust_scale_", "noise_var_", "code_center_",
                    "code_scale_", "score_scale_")
_ENSEMBLE_INTS = ("hidden_size_", "batch_size_", "max_epochs_")
# Every tabular detector's training calibration of its per-column scores (feature_scores).
# Absent from older files: such models load and explain with the raw NLL (with a warning).
_CALIBRATION_ARRAYS = ("feature_quantile_levels_", "feature_quantiles_", "feature_tail_scale_")
# partial_fit's running statistics of the real columns (absent from files before it).
_STREAM_ARRAYS = ("running_count_", "running_var_")
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
        elif isinstance(value, tuple):  # hidden_sizes, hidden_channels, ...
            value = {"__tuple__": _plain(list(value))}
        elif name == "threshold" and not isinstance(value, str):
            value = {"__threshold__": [type(value).__name__,
                                       _params_to_json(value)]}
        params[name] = _plain(value)
    return params


def _params_from_json(params: dict) -> dict:
    out = {}
    for name, value in params.items():
        if isinstance(value, dict) and "__pairs__" in value:
            value = {k: v for k, v in value["__pairs__"]}
        elif isinstance(value, dict) and "__tuple__" in value:
            value = tuple(value["__tuple__"])
        elif isinstance(value, dict) and "__threshold__" in value:
            class_name, threshold_params = value["__threshold__"]
            value = _threshold_class(class_name)(**_params_from_json(threshold_params))
        out[name] = value
    return out


def _threshold_class(name: str):
    """One of the threshold classes :mod:`aepipe.thresholds` exports (never a free lookup)."""
    from . import thresholds

    exported = (getattr(thresholds, name) for name in thresholds.__all__)
    known = {cls.__name__: cls for cls in exported if isinstance(cls, type)
             and issubclass(cls, thresholds.BaseThreshold) and cls is not thresholds.BaseThreshold}
    if name not in known:
        raise ModelFileError(f"The model file names the threshold class {name!r}, which is not "
                             f"one aepipe loads ({sorted(known)}).")
    return known[name]


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
             "was_categorical_dtype": c.was_categorical_dtype,
             "dtype": None if c.dtype is None else np.dtype(c.dtype).name,
             "indexed": bool(c.indexed)}
            for c in layout.columns
        ],
    }


def _column_dtype(name):
    """A saved column dtype (a NumPy integer or float name), or None (files before it)."""
    if name is None:
        return None
    dtype = np.dtype(str(name))
    if dtype.kind not in "iuf":
        raise ValueError(f"a column dtype of {dtype} is not a numeric one")
    return dtype


def _layout_from_json(data: dict):
    from ._tabular import Column, TabularLayout

    columns = [Column(c["name"], c["kind"], int(c["start"]), int(c["stop"]),
                      tuple(c["categories"]), bool(c["ordered_categorical"]),
                      bool(c["was_categorical_dtype"]), _column_dtype(c.get("dtype")),
                      indexed=bool(c.get("indexed", False)))  # absent before: one-hot
               for c in data["columns"]]
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
            f"aepipe.save supports aepipe's detectors {list(_CLASSES)}, got {name}. "
            "Use joblib.dump for other objects (pickle: load such files only from trusted "
            "sources, loading executes code)."
        )
    check_is_fitted(estimator)


def _is_ensemble(estimator) -> bool:
    return type(estimator).__name__ == "AutoencoderEnsemble"


def _stream_state(estimator) -> dict:
    """What partial_fit continues from (absent from files before it: estimated on load)."""
    state = {}
    if hasattr(estimator, "n_samples_seen_"):
        state["n_samples_seen_"] = int(estimator.n_samples_seen_)
        state["effective_n_samples_"] = float(estimator.effective_n_samples_)
        for name in _STREAM_ARRAYS:
            state[name] = _plain(np.asarray(getattr(estimator, name), dtype=np.float64))
    if getattr(estimator, "pretrain_losses_", None) is not None:
        state["pretrain_losses_"] = [float(v) for v in estimator.pretrain_losses_]
    return state


def _restore_stream_state(estimator, fitted: dict) -> None:
    if "n_samples_seen_" in fitted:
        n_gaussian = len(estimator.layout_.gaussian_positions)
        arrays = {name: np.asarray(fitted[name], dtype=np.float64) for name in _STREAM_ARRAYS}
        if any(a.shape != (n_gaussian,) for a in arrays.values()):
            raise ValueError(f"the running statistics do not have one value per real column "
                             f"({n_gaussian})")
        estimator.n_samples_seen_ = int(fitted["n_samples_seen_"])
        estimator.effective_n_samples_ = float(fitted["effective_n_samples_"])
        for name, value in arrays.items():
            setattr(estimator, name, value)
    if "pretrain_losses_" in fitted:
        estimator.pretrain_losses_ = [float(v) for v in fitted["pretrain_losses_"]]


def _model_state(estimator) -> dict:
    """The class-specific learned sizes and statistics, as JSON values."""
    calibration = {name: _plain(np.asarray(getattr(estimator, name), dtype=np.float64))
                   for name in _CALIBRATION_ARRAYS if hasattr(estimator, name)}
    calibration.update(_stream_state(estimator))
    if _is_ensemble(estimator):
        return {
            "latent_dims_": [int(k) for k in estimator.latent_dims_],
            **{name: int(getattr(estimator, name)) for name in _ENSEMBLE_INTS},
            **{name: _plain(np.asarray(getattr(estimator, name), dtype=np.float64))
               for name in _ENSEMBLE_ARRAYS},
            **calibration,
        }
    return {
        **calibration,
        "hidden_sizes_": [int(h) for h in estimator.hidden_sizes_],
        "latent_dim_": int(estimator.latent_dim_),
        "score_seed": int(estimator._score_seed),
        "noise_var_": (None if getattr(estimator, "noise_var_", None) is None
                       else _plain(np.asarray(estimator.noise_var_, dtype=np.float64))),
    }


def _restore_calibration(estimator, fitted: dict) -> None:
    """The per-column score calibration, when the file has it (older files do not), checked."""
    present = [name for name in _CALIBRATION_ARRAYS if name in fitted]
    if not present:
        return
    if len(present) != len(_CALIBRATION_ARRAYS):
        raise ValueError(f"the config holds only part of the column calibration ({present})")
    levels, quantiles, tail = (np.asarray(fitted[name], dtype=np.float64)
                               for name in _CALIBRATION_ARRAYS)
    n_columns = len(estimator.layout_.columns)
    if (levels.ndim != 1 or quantiles.shape != (len(levels), n_columns)
            or tail.shape != (n_columns,)):
        raise ValueError(
            f"the column calibration has shapes {levels.shape}, {quantiles.shape} and "
            f"{tail.shape}, but the layout has {n_columns} columns")
    estimator.feature_quantile_levels_ = levels
    estimator.feature_quantiles_ = quantiles
    estimator.feature_tail_scale_ = tail


def _restore_model_state(estimator, fitted: dict) -> None:
    _restore_calibration(estimator, fitted)
    _restore_stream_state(estimator, fitted)
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
    if fitted.get("noise_var_") is not None:  # absent from files written before sampling
        estimator.noise_var_ = np.asarray(fitted["noise_var_"], dtype=np.float64)


# ---------------------------------------------------------------- windowed detectors
def _encode(value, arrays: dict, key: str):
    """A learned attribute as JSON; numeric arrays go into ``arrays`` (stored as tensors)."""
    import torch

    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1 and all(
            isinstance(v, str) for v in value):
        return {"__strings__": value.tolist()}  # feature_names_in_
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{key!r} is an array of {value.dtype}, which the safe format does "
                            "not store.")
        if value.flags.f_contiguous and not value.flags.c_contiguous:
            # Stored transposed, so it comes back in the same memory order: BLAS sums
            # in another order for another layout, and scores would differ in the last bit.
            arrays[key] = torch.from_numpy(np.ascontiguousarray(value.T))
            return {"__array__": key, "transposed": True}
        arrays[key] = torch.from_numpy(np.ascontiguousarray(value))
        return {"__array__": key}
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return {"__float__": repr(float(value))}
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return _plain(value)
    if isinstance(value, (list, tuple)):
        items = [_encode(v, arrays, f"{key}.{i}") for i, v in enumerate(value)]
        return {"__tuple__" if isinstance(value, tuple) else "__list__": items}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, arrays, f"{key}.{k}") for k, v in value.items()}}
    raise TypeError(f"{key!r} holds a {type(value).__name__}, which the safe format does not "
                    "store.")


def _decode(value, arrays: dict):
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        array = arrays[value["__array__"]].numpy()
        return array.T if value.get("transposed") else array
    if "__strings__" in value:
        return np.asarray(value["__strings__"], dtype=object)
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__list__" in value:
        return [_decode(v, arrays) for v in value["__list__"]]
    if "__dict__" in value:
        return {k: _decode(v, arrays) for k, v in value["__dict__"].items()}
    raise ValueError(f"unknown encoded value {sorted(value)}")


def _attributes(obj, arrays: dict, prefix: str, skip=()) -> dict:
    """Every learned attribute of ``obj`` (its ``vars`` less its parameters and ``skip``)."""
    params = set(obj.get_params(deep=False)) if hasattr(obj, "get_params") else set()
    return {name: _encode(value, arrays, f"{prefix}{name}") for name, value in vars(obj).items()
            if name not in params and name not in skip}


def _set_attributes(obj, encoded: dict, arrays: dict) -> None:
    for name, value in encoded.items():
        # Learned attributes only (``mean_``, ``_peaks``), never a dunder or a method.
        if not (_LEARNED_NAME.fullmatch(name) and not callable(getattr(type(obj), name, None))):
            raise ValueError(f"{name!r} is not a learned attribute")
        setattr(obj, name, _decode(value, arrays))


def _windowed_parts(estimator):
    """``(fitted, tensors, histories)`` of a windowed detector."""
    arrays: dict = {}
    fitted = {"attributes": _attributes(estimator, arrays, "array.", skip=_WINDOWED_OBJECTS)}
    threshold = estimator.threshold_object_
    fitted["threshold_object_"] = None if threshold is None else {
        "class": type(threshold).__name__, "params": _params_to_json(threshold),
        "attributes": _attributes(threshold, arrays, "array.threshold."),
    }
    if hasattr(estimator, "pca_"):
        fitted["pca_"] = {"params": _params_to_json(estimator.pca_),
                          "attributes": _attributes(estimator.pca_, arrays, "array.pca.")}
    nets = getattr(estimator, "nets_", [])
    fitted["n_nets"] = len(nets)
    tensors = {f"net{k}.{name}": value.detach().cpu()
               for k, net in enumerate(nets) for name, value in net.module_.state_dict().items()}
    histories = [net.history_.to_list() for net in nets if getattr(net, "history_", None)]
    return fitted, {**tensors, **arrays}, histories if len(histories) == len(nets) else None


def _build_windowed(estimator, fitted, state, histories, device):
    from sklearn.decomposition import PCA
    from skorch.history import History

    from .estimators._autoencoders import resolve_device

    arrays = {key: value for key, value in state.items() if key.startswith("array.")}
    _set_attributes(estimator, fitted["attributes"], arrays)
    saved = fitted["threshold_object_"]
    estimator.threshold_object_ = None
    if saved is not None:
        threshold = _threshold_class(saved["class"])(**_params_from_json(saved["params"]))
        _set_attributes(threshold, saved["attributes"], arrays)
        estimator.threshold_object_ = threshold
    if "pca_" in fitted:
        pca = PCA(**_params_from_json(fitted["pca_"]["params"]))
        _set_attributes(pca, fitted["pca_"]["attributes"], arrays)
        estimator.pca_ = pca
    n_nets = int(fitted["n_nets"])
    stored = {key.split(".", 1)[0] for key in state if key.startswith("net")}
    if len(stored) != n_nets or any(f"net{k}" not in stored for k in range(n_nets)):
        raise ValueError(f"the weights hold {len(stored)} nets, the config {n_nets}")
    if not n_nets:
        return estimator
    estimator.device_ = resolve_device(device)
    n_channels = int(estimator.n_features_in_)

    def make_net():
        if type(estimator).__name__ != "WindowedDenoisingAutoencoder":
            return estimator._make_net(n_channels, estimator.batch_size, None)
        # Its module is built from the closed-form start (the weights replace it):
        # placeholders of the stored shapes, checked before anything is allocated.
        latent, n_inputs = state["net0.encoder.weight"].shape
        denoised = int(np.sum(estimator._denoised(n_channels)))
        if (latent, n_inputs) != (int(estimator.latent_dim_), estimator.width * denoised):
            raise ValueError("the weights do not fit the window and latent sizes in the config")
        estimator._init = (np.zeros((latent, n_inputs)), np.zeros(latent), np.zeros(n_inputs))
        try:
            return estimator._make_net(n_channels, estimator.batch_size, None)
        finally:
            del estimator._init

    nets = []
    for k in range(n_nets):
        prefix = f"net{k}."
        weights = {key[len(prefix):]: value for key, value in state.items()
                   if key.startswith(prefix)}
        net = _initialized(make_net, weights)
        net.module_.load_state_dict(weights)
        net.train_split = None
        if histories is not None:
            net.history_ = History(histories[k])
        nets.append(net)
    estimator.nets_, estimator.net_ = nets, nets[0]
    return estimator


def save(estimator, path) -> Path:
    """Write a fitted detector to ``path`` in aepipe's safe model format.

    Parameters
    ----------
    estimator : fitted Autoencoder (or one of its subclasses), AutoencoderEnsemble
        (:func:`aepipe.make_default_detector`), or a windowed detector
        (:func:`aepipe.make_default_sensor_detector`, ``WindowedPCA``, ...)
        with its threshold, or a fitted :class:`aepipe.retrieval.CodeIndex` (its
        encoder, codes and ids; the search structure is rebuilt on load)
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

    if _is_index(estimator):
        return _save_index(estimator, path)
    _check_savable(estimator)
    if type(estimator).__name__ in _WINDOWED:
        # One history per net; the fitted attributes are stored generically.
        fitted, state, history = _windowed_parts(estimator)
    else:
        state = {k: v.detach().cpu() for k, v in estimator.net_.module_.state_dict().items()}
        history = getattr(estimator.net_, "history_", None)
        history = None if history is None else history.to_list()
        fitted = {
            "offset_": float(estimator.offset_),
            "n_features_in_": int(estimator.n_features_in_),
            "feature_names_in_": (None if not hasattr(estimator, "feature_names_in_")
                                  else [str(n) for n in estimator.feature_names_in_]),
            "device_": str(estimator.device_),
            "layout_": _layout_to_json(estimator.layout_),
            **_model_state(estimator),
        }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    members = {WEIGHTS: buffer.getvalue()}
    if history is not None:
        members[HISTORY] = json.dumps(history).encode()
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
    return _write_archive(path, config_bytes, members)


def _write_archive(path, config_bytes: bytes, members: dict) -> Path:
    """The zip of ``config.json`` and ``members``, written to a temporary file and moved in."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, default_file_mode())
        with os.fdopen(handle, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.comment = _CONFIG_HASH + hashlib.sha256(config_bytes).hexdigest().encode()
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


def _damaged(path, name: str, error) -> ModelFileError:
    return ModelFileError(
        f"Model file {str(path)!r}: {name!r} cannot be read ({type(error).__name__}: {error}); "
        "the file is truncated or corrupted."
    )


def _read_member(archive, name: str, path, size: int | None = None,
                 limit: int = _MAX_MEMBER_BYTES) -> bytes:
    """A member's bytes, refused before decompression when its size is not the one expected.

    ``size`` is the size the config declares (None for the config itself,
    bounded by ``limit``). The zip header's size must match it, stay within
    ``limit`` and within ``_MAX_EXPANSION`` times the compressed size; then
    at most one byte more than declared is decompressed.
    """
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(
            f"Model file {str(path)!r} has no {name!r}; it is truncated or not an aepipe model. "
            "Save it again with aepipe.save."
        ) from None
    declared = info.file_size
    if size is not None and declared != size:
        raise ModelFileError(
            f"Model file {str(path)!r}: {name!r} is {declared} bytes in the zip but {size} in "
            f"{CONFIG}; the file was modified or damaged."
        )
    if declared > limit or declared > max(_MIN_EXPANSION_BYTES,
                                          _MAX_EXPANSION * info.compress_size):
        raise ModelFileError(
            f"Model file {str(path)!r}: {name!r} declares {declared} bytes from "
            f"{info.compress_size} compressed, implausibly large; refused before decompressing."
        )
    try:
        with archive.open(info) as member:
            data = member.read(declared + 1)
    except Exception as error:  # zlib.error, BadZipFile, NotImplementedError, EOFError, ...
        raise _damaged(path, name, error) from None
    if len(data) != declared:
        raise _damaged(path, name, EOFError(f"{len(data)} bytes where {declared} are declared"))
    return data


def _check_config_hash(archive, config_bytes: bytes, version, path) -> None:
    """Version 2 files carry config.json's SHA-256 in the zip comment: it must match."""
    if version == 1:
        warnings.warn(
            f"Model file {str(path)!r} was written by an older aepipe (format version 1), "
            f"without a checksum of its {CONFIG}: edits to it cannot be detected. Save it "
            "again with aepipe.save to add one.", UserWarning, stacklevel=3)
        return
    expected = _CONFIG_HASH + hashlib.sha256(config_bytes).hexdigest().encode()
    if archive.comment != expected:
        raise ModelFileError(
            f"Model file {str(path)!r}: {CONFIG} does not match the checksum in the file; the "
            "file was modified or damaged."
        )


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
    estimator : fitted Autoencoder (or subclass), AutoencoderEnsemble, windowed detector
        or CodeIndex

    Raises
    ------
    ModelFileError
        The file is missing, not a zip, truncated, tampered with (a member's
        hash or size differs from the config), names an unknown class or
        parameter, or misses the weights.
    """
    from . import estimators, sensor

    _check_device_argument(device)
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model file {str(path)!r} does not exist.")
    try:
        archive = zipfile.ZipFile(path)
    except Exception as error:  # BadZipFile, OSError, EOFError, NotImplementedError, ...
        raise ModelFileError(
            f"Model file {str(path)!r} is not a readable aepipe model ({error}); it is "
            "truncated, corrupted or of another format."
        ) from None
    with archive:
        config_bytes = _read_member(archive, CONFIG, path, limit=_MAX_CONFIG_BYTES)
        try:
            config = json.loads(config_bytes)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise ModelFileError(
                f"Model file {str(path)!r} has an invalid {CONFIG} ({error})."
            ) from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ModelFileError(f"Model file {str(path)!r} is not an aepipe model file.")
        version = config.get("format_version")
        if version not in _READABLE_VERSIONS:
            raise ModelFileError(
                f"Model file {str(path)!r} has format version {version!r}; this aepipe "
                f"({__version__}) reads versions {list(_READABLE_VERSIONS)}."
            )
        _check_config_hash(archive, config_bytes, version, path)
        members = {}
        declared = config.get("members")
        if not isinstance(declared, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("size"), int) for v in declared.values()):
            raise ModelFileError(f"Model file {str(path)!r}: {CONFIG} lists no valid members.")
        for name, expected in declared.items():
            data = _read_member(archive, name, path, size=expected["size"])
            if hashlib.sha256(data).hexdigest() != expected.get("sha256"):
                raise ModelFileError(
                    f"Model file {str(path)!r}: {name!r} does not match the size/SHA-256 in "
                    f"{CONFIG}; the file was modified or damaged."
                )
            members[name] = data
    if config.get("class") in _INDEXES:
        return _load_index(config, members, path, device)
    if WEIGHTS not in members:
        raise ModelFileError(f"Model file {str(path)!r} lists no {WEIGHTS!r}.")
    class_name = config.get("class")
    if class_name not in _CLASSES:
        raise ModelFileError(
            f"Model file {str(path)!r} names the class {class_name!r}, which is not one aepipe "
            f"loads ({list(_CLASSES)})."
        )
    try:
        module = sensor if class_name in _WINDOWED else estimators
        return _build(getattr(module, class_name), config, members, device)
    except ModelFileError:
        raise
    except Exception as error:  # whatever the stored state makes the rebuild fail with
        raise ModelFileError(
            f"Model file {str(path)!r} cannot be rebuilt into a {class_name} "
            f"({type(error).__name__}: {error})."
        ) from None


def _check_device_argument(device) -> None:
    """``device`` is the caller's choice: a bad one is their error, not the file's."""
    import torch

    from .estimators._autoencoders import resolve_device

    if device is None:
        return
    try:
        torch.empty(0, device=resolve_device(device))
    except Exception as error:  # unknown or unavailable device (RuntimeError, ValueError, ...)
        raise ValueError(
            f"device={device!r} cannot hold tensors here ({error}); use 'cpu', 'cuda', "
            "'cuda:N', 'auto' or None (the saved device when available)."
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
    windowed = cls.__name__ in _WINDOWED
    if device is None:
        device = (fitted["attributes"].get("device_", "cpu") if windowed
                  else fitted["device_"])
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            logger.info("Model saved on %s; loading it on the CPU.", device)
            device = "cpu"
    if windowed:
        # Tensors to the CPU first: the learned arrays become NumPy arrays there.
        state = _load_weights(members, "cpu")
        histories = json.loads(members[HISTORY]) if HISTORY in members else None
        return _build_windowed(estimator, fitted, state, histories, device)
    estimator.device_ = resolve_device(device)
    estimator.layout_ = _layout_from_json(fitted["layout_"])
    _restore_model_state(estimator, fitted)
    estimator.n_features_in_ = int(fitted["n_features_in_"])
    if fitted.get("feature_names_in_") is not None:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    state = _load_weights(members, estimator.device_)

    def make_net():
        if _is_ensemble(estimator):
            return estimator._make_net(1)
        net = estimator._make_net(1, None)
        net.mask_missing = estimator.handle_missing == "mask"
        return net

    net = _initialized(make_net, state)
    net.module_.load_state_dict(state)
    net.train_split = None
    if HISTORY in members:
        net.history_ = History(json.loads(members[HISTORY]))
    estimator.net_ = net
    estimator.offset_ = float(fitted["offset_"])
    return estimator


# ---------------------------------------------------------------- retrieval indexes
def _is_index(obj) -> bool:
    return type(obj).__name__ in _INDEXES and type(obj).__module__.startswith("aepipe.")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _save_index(index, path) -> Path:
    """A :class:`~aepipe.retrieval.CodeIndex`: its encoder's model file, codes and ids."""
    import sklearn
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(index)
    members = {}
    if index.encoder is not None:
        try:
            _check_savable(index.encoder)
        except TypeError as error:
            raise TypeError(
                f"The CodeIndex cannot be saved in aepipe's format because its encoder cannot: "
                f"{error}"
            ) from None
        with tempfile.TemporaryDirectory(prefix="aepipe-index-") as tmp:
            members[ENCODER] = save(index.encoder, Path(tmp) / ENCODER).read_bytes()
    members[CODES] = _npy(index.codes_)
    members[IDS] = _npy(index.ids_)
    params = {name: _plain(value) for name, value in index.get_params(deep=False).items()
              if name != "encoder"}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": {"aepipe": __version__, "scikit-learn": sklearn.__version__},
        "class": type(index).__name__,
        "params": params,
        "fitted": {"method_": index.method_, "n_indexed_": int(index.n_indexed_)},
        "members": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                    for name, data in members.items()},
    }
    return _write_archive(path, json.dumps(config, indent=1, allow_nan=False).encode(), members)


def _load_index(config: dict, members: dict, path, device):
    try:
        return _build_index(config, members, device)
    except ModelFileError:
        raise
    except Exception as error:  # whatever the stored state makes the rebuild fail with
        raise ModelFileError(
            f"Model file {str(path)!r} cannot be rebuilt into a CodeIndex "
            f"({type(error).__name__}: {error})."
        ) from None


def _build_index(config: dict, members: dict, device):
    from .retrieval import CodeIndex

    params = dict(config["params"])
    unknown = sorted(set(params) - (set(CodeIndex().get_params(deep=False)) - {"encoder"}))
    if unknown:
        raise ModelFileError(f"The model file sets unknown parameters {unknown} of CodeIndex.")
    for name in (CODES, IDS):
        if name not in members:
            raise ModelFileError(f"The CodeIndex file lists no {name!r}.")
    encoder = None
    if ENCODER in members:
        with tempfile.TemporaryDirectory(prefix="aepipe-index-") as tmp:
            nested = Path(tmp) / ENCODER
            nested.write_bytes(members[ENCODER])
            encoder = load(nested, device=device)
    codes = np.load(io.BytesIO(members[CODES]), allow_pickle=False)
    ids = np.load(io.BytesIO(members[IDS]), allow_pickle=False)
    fitted = config["fitted"]
    if codes.ndim != 2 or codes.dtype != np.float32 or ids.shape != (len(codes),) or (
            ids.dtype.kind not in "iU") or len(codes) != int(fitted["n_indexed_"]):
        raise ValueError(f"codes {codes.shape} {codes.dtype} and ids {ids.shape} {ids.dtype} do "
                         f"not make an index of {fitted['n_indexed_']} records")
    index = CodeIndex(encoder, **params)
    index._restore(codes, ids, fitted["method_"])
    return index


def _load_weights(members, device) -> dict:
    import torch

    try:
        return torch.load(io.BytesIO(members[WEIGHTS]), map_location=device, weights_only=True)
    except Exception as error:  # the unpickler raises many types on bad data
        raise ModelFileError(f"The weights cannot be read ({error}).") from None


def _initialized(make_net, weights: dict):
    """``make_net()`` initialised, once its parameter shapes are checked against ``weights``.

    The net is first built on PyTorch's ``meta`` device, which allocates
    nothing: layer sizes in a damaged or tampered config that do not match the
    stored weights are an error before they can exhaust memory.
    """
    import torch

    dry = make_net()
    device, dry.device = dry.device, "meta"
    with torch.device("meta"):
        dry.initialize()
    expected = {name: tuple(value.shape) for name, value in dry.module_.state_dict().items()}
    stored = {name: tuple(value.shape) for name, value in weights.items()}
    if expected != stored:
        differing = sorted(set(expected.items()) ^ set(stored.items()))[:3]
        raise ValueError(f"the weights do not fit the model the config describes "
                         f"(first differences: {differing})")
    net = make_net()
    net.device = device
    return net.initialize()
