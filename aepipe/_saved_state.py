"""The saved-state protocol: a fitted aepipe object as JSON config plus named arrays.

:func:`aepipe.save` and :func:`aepipe.load` know no class by name. Every
class they write implements two methods, inherited from
:class:`SavedStateMixin` (a base of ``BaseDetector``,
``BaseWindowedDetector``, ``Denoiser`` and ``CodeIndex``):

``obj._get_saved_state() -> (config, arrays)``
    ``config`` is a JSON-able dict (parameters and learned attributes);
    ``arrays`` maps names to numeric NumPy arrays (network weights and
    learned arrays), stored with ``safetensors``.
``cls._from_saved_state(config, arrays, *, device=None) -> obj``
    The fitted object rebuilt from them, executing no code from the file.

The classes :func:`aepipe.load` may build are exactly those that implement
the protocol: each subclass registers itself (``__init_subclass__``) under its
class name, in :func:`saved_state_class`.

The default implementation needs nothing from a subclass: it saves the
parameters (``get_params(deep=False)``) and every learned attribute (the
instance's ``vars`` less its parameters), encoded by type -- numbers,
strings, tuples, lists, dicts, NumPy arrays and scalars, a
:class:`~aepipe._tabular.TabularLayout`, a fitted threshold (any class
:mod:`aepipe.thresholds` exports), a scikit-learn ``PCA``, another object
implementing the protocol (nested), and skorch nets. A net's weights are
arrays ``net<k>.<parameter>``; to rebuild it the class provides one hook,
``_net_for_loading(weights)``: the unfitted skorch net of the right shapes
(built from the learned attributes, which are set first). A new autoencoder
variant inherits it from ``Autoencoder``; a class with no net needs nothing.
Anything else in a learned attribute is a :class:`TypeError` at save time.

Optional declarations: ``_fitted_params`` (parameters holding a fitted object
used as it is, saved with its state: ``CodeIndex.encoder``),
``_unsaved_attributes`` (caches rebuilt on first use), and a
``_check_loaded_state()`` method run after loading (the detectors check that
their column calibration is whole). A scikit-learn ``Pipeline`` (anywhere a
value is encoded) is saved step by step: aepipe objects through the protocol,
scikit-learn's scalers, imputers, encoders and a ColumnTransformer of them
(the explicit list ``_SKLEARN_STEP_NAMES``) as parameters plus learned
attributes; any other step is a :class:`TypeError` naming it.
"""

from __future__ import annotations

import re
import sys

import numpy as np

__all__ = ["SavedStateMixin", "saved_state_class"]

_REGISTRY: dict[str, type | None] = {}
# A learned attribute's name (``mean_``, ``_score_seed``); never a dunder.
_LEARNED_NAME = re.compile(r"_?[a-z][a-z0-9_]*")
# Parameters holding training-time objects, saved as None.
_UNSAVED_PARAMS = ("callbacks", "checkpoint_dir")
_NET_PREFIX = "net"


def _register(cls) -> None:
    name = cls.__name__
    if name.startswith(("_", "Base")):  # abstract bases: never built from a file
        return
    previous = _REGISTRY.get(name, cls)
    if previous is not None and (previous.__module__, previous.__qualname__) == (
            cls.__module__, cls.__qualname__):
        _REGISTRY[name] = cls  # the same class defined again (a reloaded module)
        return
    if previous is not None:
        # Two classes of one name: aepipe's own wins; two foreign ones are ambiguous.
        ours = [c for c in (previous, cls) if c.__module__.split(".")[0] == "aepipe"]
        _REGISTRY[name] = ours[0] if len(ours) == 1 else None


def saved_state_class(name):
    """The registered class of ``name`` implementing the protocol, or None.

    The packages holding aepipe's implementations are imported first, so
    their classes are registered whatever the caller imported before.
    """
    import importlib

    for module in ("aepipe.estimators", "aepipe.sensor", "aepipe.retrieval"):
        importlib.import_module(module)
    return _REGISTRY.get(name) if isinstance(name, str) else None


def registered_names() -> list[str]:
    """Names of the classes a model file may name (for error messages)."""
    saved_state_class(None)
    return sorted(name for name, cls in _REGISTRY.items() if cls is not None)


def _plain_classes() -> dict:
    """Objects saved as parameters plus learned attributes: thresholds and sklearn's PCA."""
    from sklearn.decomposition import PCA

    from . import thresholds

    known = {"PCA": PCA, **{cls.__name__: cls for cls in _sklearn_steps()}}
    for name in thresholds.__all__:
        cls = getattr(thresholds, name)
        if (isinstance(cls, type) and issubclass(cls, thresholds.BaseThreshold)
                and cls is not thresholds.BaseThreshold):
            known[cls.__name__] = cls
    return known


def _is_net(value) -> bool:
    skorch = sys.modules.get("skorch")
    return skorch is not None and isinstance(value, skorch.NeuralNet)


class SavedStateMixin:
    """The saved-state protocol (see :mod:`aepipe._saved_state`), generically.

    Subclasses with skorch nets implement ``_net_for_loading(weights)``.
    """

    # Parameters holding a fitted object used as it is (CodeIndex's encoder): saved with
    # their fitted state, not as an unfitted template.
    _fitted_params: tuple[str, ...] = ()
    # Learned attributes rebuilt on first use (caches, locks): not saved.
    _unsaved_attributes: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register(cls)

    def _get_saved_state(self) -> tuple[dict, dict]:
        """``(config, arrays)``: JSON-able parameters and learned state, named arrays."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        encoder = _Encoder()
        params = encoder.params(self)
        config = {"params": params, "attributes": encoder.attributes(self, "array.")}
        if encoder.nets:
            config["nets"] = encoder.net_records()
        return config, encoder.arrays

    @classmethod
    def _from_saved_state(cls, config: dict, arrays: dict, *, device=None):
        """The fitted object ``_get_saved_state`` described (errors: ValueError, TypeError...)."""
        decoder = _Decoder(arrays, device)
        obj = cls(**decoder.params(cls, config["params"]))
        attributes = config["attributes"]
        if not isinstance(attributes, dict):
            raise ValueError("the learned attributes are not a mapping")
        with_nets = {name for name, value in attributes.items() if _holds_net(value)}
        decoder.set_attributes(obj, {k: v for k, v in attributes.items() if k not in with_nets})
        records = config.get("nets", [])
        if records:
            _set_device(obj, device)
        decoder.nets = _build_nets(obj, records, arrays, decoder)
        decoder.set_attributes(obj, {k: attributes[k] for k in with_nets})
        check = getattr(obj, "_check_loaded_state", None)
        if callable(check):  # a class's own consistency checks of what it loaded
            check()
        return obj

    def _net_for_loading(self, weights: dict):
        """The unfitted skorch net that ``weights`` (a state dict) go into."""
        raise TypeError(f"{type(self).__name__} does not say how to rebuild its nets "
                        "(_net_for_loading).")


# ---------------------------------------------------------------- encoding
def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Encoder:
    """Values to JSON; numeric arrays into ``arrays``, skorch nets into ``nets``."""

    def __init__(self):
        self.arrays: dict = {}
        self.nets: list = []

    def params(self, obj, prefix: str = "param.") -> dict:
        out = {}
        for name, value in obj.get_params(deep=False).items():
            if name in _UNSAVED_PARAMS:
                value = None
            elif name == "random_state" and not (
                    value is None or isinstance(value, (int, np.integer))):
                value = None  # a RandomState's stream is not part of the fitted model
            out[name] = self.encode(value, f"{prefix}{name}",
                                    fitted=name in getattr(obj, "_fitted_params", ()))
        return out

    def attributes(self, obj, prefix: str) -> dict:
        params = set(obj.get_params(deep=False)) if hasattr(obj, "get_params") else set()
        skip = params | set(getattr(obj, "_unsaved_attributes", ()))
        return {name: self.encode(value, f"{prefix}{name}")
                for name, value in vars(obj).items() if name not in skip}

    def net_records(self) -> list:
        records = []
        for net in self.nets:
            history = getattr(net, "history_", None)
            records.append({"history": None if history is None
                            else self.encode(history.to_list(), "history")})
        return records

    def encode(self, value, key: str, fitted: bool = True):  # noqa: C901 - one case per type
        from ._tabular import TabularLayout

        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, np.generic):
            if isinstance(value, float) and not np.isfinite(value):
                return {"__float__": repr(value)}
            return value
        if isinstance(value, np.generic):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"{key!r} is a {value.dtype} scalar, which the safe format "
                                "does not store.")
            return {"__scalar__": [value.dtype.str, self.encode(value.item(), key)]}
        if isinstance(value, np.ndarray):
            return self._array(value, key)
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, f"{key}.{i}", fitted) for i, v in enumerate(value)]
            return {"__tuple__" if isinstance(value, tuple) else "__list__": items}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {"__dict__": {k: self.encode(v, f"{key}.{k}", fitted)
                                     for k, v in value.items()}}
            return {"__pairs__": [[self.encode(k, key), self.encode(v, f"{key}.{i}", fitted)]
                                  for i, (k, v) in enumerate(value.items())]}
        if isinstance(value, slice):  # ColumnTransformer's output_indices_
            return {"__slice__": [self.encode(v, key) for v in
                                  (value.start, value.stop, value.step)]}
        if isinstance(value, np.dtype):
            return {"__dtype__": value.str}
        if isinstance(value, type) and issubclass(value, np.generic):  # e.g. dtype=np.float64
            return {"__numpy_type__": np.dtype(value).str}
        if isinstance(value, TabularLayout):
            return {"__layout__": _layout_to_json(value)}
        if _is_net(value):
            for k, net in enumerate(self.nets):
                if net is value:  # net_ is nets_[0]: one net, referenced twice
                    return {"__net__": k}
            self.nets.append(value)
            k = len(self.nets) - 1
            state = value.module_.state_dict()
            for name, tensor in state.items():
                self.arrays[f"{_NET_PREFIX}{k}.{name}"] = np.ascontiguousarray(
                    tensor.detach().cpu().numpy())
            return {"__net__": k}
        return self._object(value, key, fitted)

    def _array(self, value: np.ndarray, key: str):
        if value.dtype == object and value.ndim == 1 and all(isinstance(v, str) for v in value):
            return {"__strings__": value.tolist()}  # feature_names_in_
        if value.dtype.kind == "U":
            return {"__unicode__": [value.dtype.str, value.tolist()]}
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{key!r} is an array of {value.dtype}, which the safe format does "
                            "not store.")
        if value.ndim > 1 and value.flags.f_contiguous and not value.flags.c_contiguous:
            # Stored transposed, so it comes back in the same memory order: BLAS sums
            # in another order for another layout, and scores would differ in the last bit.
            self.arrays[key] = np.ascontiguousarray(value.T)
            return {"__array__": key, "transposed": True}
        self.arrays[key] = np.ascontiguousarray(value)
        return {"__array__": key}

    def _object(self, value, key: str, fitted: bool):
        name = type(value).__name__
        if _is_pipeline(value):
            steps = [[step_name, self._step(step_name, step, f"{key}.steps.{i}", fitted)]
                     for i, (step_name, step) in enumerate(value.steps)]
            return {"__pipeline__": {"steps": steps, "verbose": bool(value.verbose)}}
        if isinstance(value, SavedStateMixin) and _REGISTRY.get(name) is type(value):
            if not fitted:  # a parameter: the unfitted template
                return {"__estimator__": [name, self.params(value, f"{key}.param.")]}
            config, arrays = value._get_saved_state()
            self.arrays.update({f"{key}.{k}": v for k, v in arrays.items()})
            return {"__saved__": [name, config, key]}
        if _plain_classes().get(name) is type(value):
            return {"__object__": [name, self.params(value, f"{key}.param."),
                                   self.attributes(value, f"{key}.") if fitted else None]}
        raise TypeError(f"{key!r} holds a {type(value).__name__}, which the safe format does "
                        "not store.")

    def _step(self, name: str, step, key: str, fitted: bool):
        """A pipeline step: an aepipe object (the protocol) or an allowed scikit-learn one."""
        if step is None or step == "passthrough":
            return step
        if not (isinstance(step, SavedStateMixin) or _is_pipeline(step)
                or type(step) in _sklearn_steps()):
            raise TypeError(
                f"Pipeline step {name!r} is a {type(step).__name__}, which aepipe.save does not "
                f"store. Supported steps: aepipe's detectors and Denoiser, and scikit-learn's "
                f"{sorted(c.__name__ for c in _sklearn_steps())} (a ColumnTransformer of these "
                "and of Pipelines of them; FunctionTransformer without a function).")
        try:
            return self.encode(step, key, fitted)
        except TypeError as error:
            raise TypeError(f"Pipeline step {name!r} ({type(step).__name__}) cannot be saved: "
                            f"{error}") from None


# scikit-learn objects a pipeline may hold (explicit, by class): scalers, imputers, the
# standard encoders, a ColumnTransformer of them, and the FunctionTransformer it makes of
# "passthrough" (its function must be None: a function is not a value the format stores).
# Saved as their parameters plus learned attributes, like the thresholds and PCA. Not with
# skops.io: importing it walks every scikit-learn module (all_estimators) and, through
# scikit-learn's array-API shim, torch -- measured at 2-3 times the import time of torch
# itself, on every load of a pipeline with a scaler, which pushed `mlflow models serve` of
# StandardScaler + PCADetector past tests/test_serving.py's 45 s startup limit here.
_SKLEARN_STEP_NAMES = (
    "sklearn.preprocessing.StandardScaler", "sklearn.preprocessing.MinMaxScaler",
    "sklearn.preprocessing.RobustScaler", "sklearn.preprocessing.MaxAbsScaler",
    "sklearn.preprocessing.OneHotEncoder", "sklearn.preprocessing.OrdinalEncoder",
    "sklearn.impute.SimpleImputer", "sklearn.impute.MissingIndicator",
    "sklearn.compose.ColumnTransformer", "sklearn.preprocessing.FunctionTransformer",
)


def _sklearn_steps() -> tuple:
    import importlib

    return tuple(getattr(importlib.import_module(path.rsplit(".", 1)[0]), path.rsplit(".", 1)[1])
                 for path in _SKLEARN_STEP_NAMES)


def _is_pipeline(value) -> bool:
    from sklearn.pipeline import Pipeline

    return type(value) is Pipeline


def _holds_net(encoded) -> bool:
    if isinstance(encoded, dict):
        return "__net__" in encoded or any(_holds_net(v) for v in encoded.values())
    if isinstance(encoded, list):
        return any(_holds_net(v) for v in encoded)
    return False


# ---------------------------------------------------------------- decoding
class _Decoder:
    def __init__(self, arrays: dict, device):
        self.arrays = arrays
        self.device = device
        self.nets: list = []

    def params(self, cls, encoded: dict) -> dict:
        if not isinstance(encoded, dict):
            raise ValueError("the parameters are not a mapping")
        known = (cls._get_param_names() if hasattr(cls, "_get_param_names")
                 else cls().get_params(deep=False))
        unknown = sorted(set(encoded) - set(known))
        if unknown:
            raise UnknownParameterError(f"The model file sets unknown parameters {unknown} of "
                                        f"{cls.__name__}.")
        return {name: self.decode(value) for name, value in encoded.items()}

    def set_attributes(self, obj, encoded: dict) -> None:
        for name, value in encoded.items():
            # Learned attributes only (``mean_``, ``_peaks``), never a dunder or a method.
            if not (isinstance(name, str) and _LEARNED_NAME.fullmatch(name)
                    and not callable(getattr(type(obj), name, None))):
                raise ValueError(f"{name!r} is not a learned attribute")
            setattr(obj, name, self.decode(value))

    def decode(self, value):  # noqa: C901 - one case per encoded type
        if isinstance(value, list):
            raise ValueError("a bare list where an encoded value is expected")
        if not isinstance(value, dict):
            return value
        if "__array__" in value:
            array = self.arrays[value["__array__"]]
            return array.T if value.get("transposed") else array
        if "__strings__" in value:
            return np.asarray(value["__strings__"], dtype=object)
        if "__unicode__" in value:
            dtype, items = value["__unicode__"]
            if np.dtype(dtype).kind != "U":
                raise ValueError(f"{dtype!r} is not a unicode dtype")
            return np.asarray(items, dtype=dtype)
        if "__float__" in value:
            return float(value["__float__"])
        if "__scalar__" in value:
            dtype, item = value["__scalar__"]
            dtype = np.dtype(dtype)
            if dtype.kind not in "biuf":
                raise ValueError(f"a scalar of {dtype} is not a number")
            return dtype.type(self.decode(item))
        if "__tuple__" in value:
            return tuple(self.decode(v) for v in value["__tuple__"])
        if "__list__" in value:
            return [self.decode(v) for v in value["__list__"]]
        if "__dict__" in value:
            return {k: self.decode(v) for k, v in value["__dict__"].items()}
        if "__pairs__" in value:
            return {self.decode(k): self.decode(v) for k, v in value["__pairs__"]}
        if "__slice__" in value:
            return slice(*(self.decode(v) for v in value["__slice__"]))
        if "__dtype__" in value:
            return np.dtype(str(value["__dtype__"]))
        if "__numpy_type__" in value:
            return np.dtype(str(value["__numpy_type__"])).type
        if "__layout__" in value:
            return _layout_from_json(value["__layout__"])
        if "__net__" in value:
            return self.nets[int(value["__net__"])]
        if "__estimator__" in value:
            name, params = value["__estimator__"]
            cls = _known_class(name)
            return cls(**self.params(cls, params))
        if "__object__" in value:
            name, params, attributes = value["__object__"]
            cls = _plain_classes().get(name)
            if cls is None:
                raise UnknownClassError(
                    f"The model file names the class {name!r}, which is not one aepipe loads "
                    f"({sorted(_plain_classes())}).")
            obj = cls(**self.params(cls, params))
            if attributes is not None:
                self.set_attributes(obj, attributes)
            return obj
        if "__pipeline__" in value:
            from sklearn.pipeline import Pipeline

            spec = value["__pipeline__"]
            steps = [(str(name), self.decode(step)) for name, step in spec["steps"]]
            return Pipeline(steps, verbose=bool(spec.get("verbose", False)))
        if "__saved__" in value:
            name, config, prefix = value["__saved__"]
            cls = _known_class(name)
            start = f"{prefix}."
            arrays = {k[len(start):]: v for k, v in self.arrays.items() if k.startswith(start)}
            return cls._from_saved_state(config, arrays, device=self.device)
        raise ValueError(f"unknown encoded value {sorted(value)}")


def _known_class(name):
    cls = saved_state_class(name) or _plain_classes().get(name)
    if cls is None:
        raise UnknownClassError(
            f"The model file names the class {name!r}, which is not one aepipe loads "
            f"({registered_names()}).")
    return cls


class UnknownClassError(ValueError):
    """A file names a class that does not implement the protocol."""


class UnknownParameterError(ValueError):
    """A file sets a parameter the class does not have."""


# ---------------------------------------------------------------- nets
def _set_device(obj, device) -> None:
    """``device_``: the caller's choice, else the saved one when available, else the CPU."""
    import logging

    import torch

    from .nets import resolve_device

    if device is None:
        device = getattr(obj, "device_", None) or "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            logging.getLogger(__name__).info("Model saved on %s; loading it on the CPU.",
                                             device)
            device = "cpu"
    obj.device_ = resolve_device(device)


def _build_nets(obj, records, arrays: dict, decoder: _Decoder) -> list:
    if not isinstance(records, list):
        raise ValueError("the nets are not a list")
    stored = {key.split(".", 1)[0] for key in arrays
              if re.fullmatch(rf"{_NET_PREFIX}\d+\..*", key)}
    if stored != {f"{_NET_PREFIX}{k}" for k in range(len(records))}:
        raise ValueError(f"the weights hold {len(stored)} nets, the config {len(records)}")
    if not records:
        return []  # no torch needed (PCADetector, WindowedPCA)
    import torch
    from skorch.history import History

    nets = []
    for k, record in enumerate(records):
        prefix = f"{_NET_PREFIX}{k}."
        weights = {key[len(prefix):]: torch.from_numpy(np.array(value))
                   for key, value in arrays.items() if key.startswith(prefix)}
        net = initialized(lambda weights=weights: obj._net_for_loading(weights), weights)
        net.module_.load_state_dict(weights)
        net.train_split = None
        history = record.get("history") if isinstance(record, dict) else None
        if history is not None:
            net.history_ = History(decoder.decode(history))
        nets.append(net)
    return nets


def initialized(make_net, weights: dict):
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


# ---------------------------------------------------------------- tabular layout
def _layout_to_json(layout) -> dict:
    return {
        "standardize": bool(layout.standardize),
        "numeric_only": bool(layout.numeric_only),
        "center": np.asarray(layout.center, dtype=np.float64).tolist(),
        "scale": np.asarray(layout.scale, dtype=np.float64).tolist(),
        "columns": [
            {"name": _plain(c.name), "kind": c.kind, "start": c.start, "stop": c.stop,
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
