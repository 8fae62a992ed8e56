"""Reading model files of format versions 1 and 2 (aepipe up to the saved-state protocol).

Those files hold ``config.json`` (parameters and learned state in a layout
per kind of detector), ``weights.pt`` (state dicts, read with
``torch.load(..., weights_only=True)``, a restricted unpickler) and
``history.json``; a CodeIndex file holds ``encoder.aepipe`` (a nested model
file) and ``codes.npy`` / ``ids.npy``. This module only reads them, exactly
as the aepipe that wrote them did; :func:`aepipe.save` writes version 3
(``aepipe/_persistence.py``). The class a file names is looked up among
the classes implementing the saved-state protocol, and its nets are built
by the protocol's ``_net_for_loading`` hook.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from ._saved_state import (
    _LEARNED_NAME,
    _layout_from_json,
    _plain_classes,
    initialized,
    saved_state_class,
)
from .exceptions import ModelFileError

logger = logging.getLogger(__name__)

WEIGHTS = "weights.pt"
HISTORY = "history.json"
ENCODER = "encoder.aepipe"
CODES = "codes.npy"
IDS = "ids.npy"
# Tabular detectors' learned arrays, as the files name them.
_ENSEMBLE_ARRAYS = ("robust_center_", "robust_scale_", "noise_var_", "code_center_",
                    "code_scale_", "score_scale_")
_ENSEMBLE_INTS = ("hidden_size_", "batch_size_", "max_epochs_")
_CALIBRATION_ARRAYS = ("feature_quantile_levels_", "feature_quantiles_", "feature_tail_scale_")
_STREAM_ARRAYS = ("running_count_", "running_var_")


def load_legacy(config: dict, members: dict, path, device, load):
    """The object a version 1 or 2 file describes; ``load`` reads a nested model file."""
    class_name = config.get("class")
    cls = saved_state_class(class_name)
    if cls is None:
        raise ModelFileError(
            f"Model file {str(path)!r} names the class {class_name!r}, which is not one aepipe "
            "loads.")
    try:
        if CODES in members:  # a retrieval index
            return _build_index(cls, config, members, device, load)
        if WEIGHTS not in members:
            raise ModelFileError(f"Model file {str(path)!r} lists no {WEIGHTS!r}.")
        return _build(cls, config, members, device)
    except ModelFileError:
        raise
    except Exception as error:  # whatever the stored state makes the rebuild fail with
        raise ModelFileError(
            f"Model file {str(path)!r} cannot be rebuilt into a {class_name} "
            f"({type(error).__name__}: {error})."
        ) from None


# ---------------------------------------------------------------- parameters
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

    known = {k: cls for k, cls in _plain_classes().items()
             if issubclass(cls, thresholds.BaseThreshold)}
    if name not in known:
        raise ModelFileError(f"The model file names the threshold class {name!r}, which is not "
                             f"one aepipe loads ({sorted(known)}).")
    return known[name]


def _construct(cls, params_json: dict):
    params = _params_from_json(params_json)
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        raise ModelFileError(f"The model file sets unknown parameters {unknown} of {cls.__name__}.")
    return cls(**params)


# ---------------------------------------------------------------- tabular detectors
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
    if "latent_dims_" in fitted:  # the ensemble
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


def _saved_device(device):
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        logger.info("Model saved on %s; loading it on the CPU.", device)
        return "cpu"
    return device


def _build(cls, config, members, device):
    from skorch.history import History

    from .nets import resolve_device

    estimator = _construct(cls, config["params"])
    fitted = config["fitted"]
    windowed = "attributes" in fitted
    if device is None:
        device = _saved_device(fitted["attributes"].get("device_", "cpu") if windowed
                               else fitted["device_"])
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
    net = initialized(lambda: estimator._net_for_loading(state), state)
    net.module_.load_state_dict(state)
    net.train_split = None
    if HISTORY in members:
        net.history_ = History(json.loads(members[HISTORY]))
    estimator.net_ = net
    estimator.offset_ = float(fitted["offset_"])
    return estimator


# ---------------------------------------------------------------- windowed detectors
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


def _set_attributes(obj, encoded: dict, arrays: dict) -> None:
    for name, value in encoded.items():
        # Learned attributes only (``mean_``, ``_peaks``), never a dunder or a method.
        if not (_LEARNED_NAME.fullmatch(name) and not callable(getattr(type(obj), name, None))):
            raise ValueError(f"{name!r} is not a learned attribute")
        setattr(obj, name, _decode(value, arrays))


def _build_windowed(estimator, fitted, state, histories, device):
    from sklearn.decomposition import PCA
    from skorch.history import History

    from .nets import resolve_device

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
    nets = []
    for k in range(n_nets):
        prefix = f"net{k}."
        weights = {key[len(prefix):]: value for key, value in state.items()
                   if key.startswith(prefix)}
        net = initialized(lambda weights=weights: estimator._net_for_loading(weights), weights)
        net.module_.load_state_dict(weights)
        net.train_split = None
        if histories is not None:
            net.history_ = History(histories[k])
        nets.append(net)
    estimator.nets_, estimator.net_ = nets, nets[0]
    return estimator


def _load_weights(members, device) -> dict:
    import torch

    try:
        return torch.load(io.BytesIO(members[WEIGHTS]), map_location=device, weights_only=True)
    except Exception as error:  # the unpickler raises many types on bad data
        raise ModelFileError(f"The weights cannot be read ({error}).") from None


# ---------------------------------------------------------------- retrieval indexes
def _build_index(cls, config: dict, members: dict, device, load):
    params = dict(config["params"])
    unknown = sorted(set(params) - (set(cls().get_params(deep=False)) - {"encoder"}))
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
    index = cls(encoder, **params)
    index._restore(codes, ids, fitted["method_"])
    return index
