"""A safe model file: JSON config plus safetensors arrays; loading unpickles nothing.

``pickle`` and ``joblib`` (and therefore ``mlflow.sklearn`` and any
``joblib.dump`` of an estimator) execute code while loading: only load such
files from sources you trust. :func:`save` / :func:`load` write and read a
format that is loaded without unpickling anything. This module is only the
container; what an object saves is its own business, through the saved-state
protocol of ``aepipe/_saved_state.py`` (``_get_saved_state`` /
``_from_saved_state``), and the classes a file may name are exactly those
implementing it. Format version 3:

- ``config.json``: format version, library versions, the object's class, its
  encoded state (parameters and learned attributes, nested objects by class
  name) and the SHA-256 and size of every other member;
- ``arrays.safetensors``: every numeric array by name -- network weights
  (``...net<k>.<parameter>``) and learned arrays -- in the ``safetensors``
  format (a JSON header and raw bytes; no unpickler at all, unlike
  ``torch.load(weights_only=True)``, a restricted unpickler that has had
  remote-code-execution bugs). A scikit-learn step of a ``Pipeline`` (scalers,
  imputers, OneHotEncoder/OrdinalEncoder, a ColumnTransformer of them: an
  explicit list of classes) is saved like any object, as its parameters and
  learned attributes (why not ``skops.io``: ``aepipe/_saved_state.py``).

Both live in one zip file, written to a temporary file and moved into place
(``os.replace``), so a crash never leaves a half-written model behind. The
zip's comment holds the SHA-256 of ``config.json``, so an edit anywhere in
the file -- the config included -- is detected; a member's size is checked
against the config before it is decompressed, within a hard cap. Any
damaged, truncated or tampered file, an unknown class, or a missing member
raises :class:`~aepipe.exceptions.ModelFileError` with what was wrong.
Files of format versions 1 and 2 (``weights.pt`` state dicts) still load,
through ``aepipe/_persistence_legacy.py``; version 1 files (before the config
checksum) with a warning that edits to their config cannot be detected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

from ._files import default_file_mode
from ._version import __version__
from .exceptions import ModelFileError

logger = logging.getLogger(__name__)

__all__ = ["load", "save"]

FORMAT = "aepipe-model"
# 2: the zip comment holds config.json's SHA-256; 3: the saved-state protocol, safetensors.
FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
_CONFIG_HASH = b"aepipe-config-sha256:"
# No member is decompressed beyond this, nor beyond this many times its compressed size
# (tensors of trained weights hardly compress; a zip bomb compresses a thousandfold).
_MAX_MEMBER_BYTES = 8 * 2**30
_MAX_EXPANSION = 200
_MIN_EXPANSION_BYTES = 2**20
CONFIG = "config.json"
ARRAYS = "arrays.safetensors"
_MAX_CONFIG_BYTES = 64 * 2**20
_ROOT = "model"  # the saved object's key: its arrays are named "model.<...>"


def _is_savable(obj) -> bool:
    from sklearn.pipeline import Pipeline

    from ._saved_state import saved_state_class

    return type(obj) is Pipeline or saved_state_class(type(obj).__name__) is type(obj)


def _check_savable(obj) -> None:
    """A TypeError unless ``obj`` implements the saved-state protocol or is a Pipeline."""
    from sklearn.utils.validation import check_is_fitted

    from ._saved_state import registered_names

    if not _is_savable(obj):
        raise TypeError(
            f"aepipe.save supports the classes implementing aepipe's saved-state protocol "
            f"({registered_names()}) and scikit-learn Pipelines of them and of scalers, imputers "
            f"and encoders; got {type(obj).__name__}. Use joblib.dump for other objects "
            "(pickle: load such files only from trusted sources, loading executes code)."
        )
    check_is_fitted(obj)


def save(estimator, path) -> Path:
    """Write a fitted aepipe object or pipeline to ``path`` in aepipe's safe model format.

    Parameters
    ----------
    estimator : fitted aepipe detector, Denoiser, CodeIndex or Pipeline
        Any class implementing the saved-state protocol (``aepipe/_saved_state.py``):
        the autoencoders, :class:`~aepipe.AutoencoderEnsemble`, :class:`~aepipe.PCADetector`,
        :class:`~aepipe.Denoiser`, the windowed detectors (with their threshold) and
        :class:`aepipe.retrieval.CodeIndex` (its encoder, codes and ids; the search
        structure is rebuilt on load); or a scikit-learn ``Pipeline`` whose steps are
        such objects or scalers, imputers, ``OneHotEncoder`` / ``OrdinalEncoder`` and a
        ``ColumnTransformer`` of these.
    path : str or path-like
        The zip file to write; replaced atomically if it exists (a directory is refused).

    Returns
    -------
    path : Path

    Raises
    ------
    TypeError
        The object, one of its pipeline steps or one of its learned attributes is of a
        kind the format does not store (the message names it).
    IsADirectoryError
        ``path`` is an existing directory: a model is one file, so name one in it.

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
    import safetensors
    import safetensors.numpy
    import sklearn

    from ._saved_state import _Encoder

    _check_file_path(path)
    _check_savable(estimator)
    encoder = _Encoder()
    model = encoder.encode(estimator, _ROOT)
    members = {ARRAYS: safetensors.numpy.save(encoder.arrays)}
    versions = {"aepipe": __version__, "scikit-learn": sklearn.__version__,
                "safetensors": safetensors.__version__}
    torch = sys.modules.get("torch")  # recorded when the object holds nets
    if torch is not None:
        versions["torch"] = torch.__version__
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions,
        "class": type(estimator).__name__,
        "model": model,
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


def load(path, *, device: str | None = None):
    """Load a model written by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
    device : str or None, default=None
        Where to put the networks; ``None`` uses the saved device when it is
        available, else the CPU.

    Returns
    -------
    estimator : the fitted object that was saved (a detector, Denoiser,
        CodeIndex or Pipeline)

    Raises
    ------
    ModelFileError
        The file is missing, not a zip, truncated, tampered with (a member's
        hash or size differs from the config), names a class that does not
        implement the saved-state protocol or an unknown parameter, or misses
        the arrays.
    """
    _check_device_argument(device)
    path = Path(path)
    config, members = _read_archive(path)
    if config["format_version"] in (1, 2):
        from ._persistence_legacy import load_legacy

        return load_legacy(config, members, path, device, load)
    return _rebuild(config, members, path, device)


def _rebuild(config: dict, members: dict, path, device):
    import safetensors.numpy

    from ._saved_state import _Decoder, registered_names

    class_name = config.get("class")
    if not (class_name == "Pipeline" or class_name in registered_names()):
        raise ModelFileError(
            f"Model file {str(path)!r} names the class {class_name!r}, which is not one aepipe "
            f"loads ({registered_names()} or a Pipeline of them)."
        )
    if ARRAYS not in members:
        raise ModelFileError(f"Model file {str(path)!r} lists no {ARRAYS!r}.")
    try:
        arrays = safetensors.numpy.load(members[ARRAYS])
    except Exception as error:  # SafetensorError, ValueError on a bad header, ...
        raise ModelFileError(f"Model file {str(path)!r}: the arrays cannot be read "
                             f"({type(error).__name__}: {error}).") from None
    try:
        estimator = _Decoder(arrays, device).decode(config["model"])
        if type(estimator).__name__ != class_name:
            raise ValueError(f"the state describes a {type(estimator).__name__}")
        return estimator
    except Exception as error:  # whatever the stored state makes the rebuild fail with
        raise ModelFileError(
            f"Model file {str(path)!r} cannot be rebuilt into a {class_name} "
            f"({type(error).__name__}: {error})."
        ) from None


def _read_archive(path: Path) -> tuple[dict, dict]:
    """The checked config and the members it declares, each checked against its hash."""
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
        if version not in _READABLE_VERSIONS or isinstance(version, bool):
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
    return config, members


def _check_file_path(path) -> None:
    """Refuse a ``path`` that is a directory: before any work, and naming the path given
    (the rename of the temporary file would fail quoting its own name)."""
    path = Path(path)
    if path.is_dir():
        example = path / "model.aepipe"
        raise IsADirectoryError(
            f"path={str(path)!r} is a directory; save writes one file: give a file name, "
            f"e.g. {str(example)!r}."
        )


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
            "again with aepipe.save to add one.", UserWarning, stacklevel=4)
        return
    expected = _CONFIG_HASH + hashlib.sha256(config_bytes).hexdigest().encode()
    if archive.comment != expected:
        raise ModelFileError(
            f"Model file {str(path)!r}: {CONFIG} does not match the checksum in the file; the "
            "file was modified or damaged."
        )



def _check_device_argument(device) -> None:
    """``device`` is the caller's choice: a bad one is their error, not the file's."""
    if device is None:
        return
    import torch

    from .nets import resolve_device

    try:
        torch.empty(0, device=resolve_device(device))
    except Exception as error:  # unknown or unavailable device (RuntimeError, ValueError, ...)
        raise ValueError(
            f"device={device!r} cannot hold tensors here ({error}); use 'cpu', 'cuda', "
            "'cuda:N', 'auto' or None (the saved device when available)."
        ) from None
