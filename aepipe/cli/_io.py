"""The CLI's side of table files: usage errors for bad paths, refusing to overwrite inputs.

Formats, reading, chunking and atomic writing live in :mod:`aepipe._tables`
(shared with Dask scoring); this module turns an unsupported suffix into a
usage error (exit code 2) and adds what only the commands need.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import click
import pandas as pd

from .. import _tables
from .._tables import UnsupportedTableFormat
from ..exceptions import DataValidationError


@contextmanager
def _suffix_is_usage_error():
    """An unsupported suffix is a usage error (exit code 2), the rest as raised."""
    try:
        yield
    except UnsupportedTableFormat as exc:
        raise click.BadParameter(str(exc), param_hint="file") from None


def table_format(path: Path) -> _tables.TableFormat:
    """The registered format of ``path``."""
    with _suffix_is_usage_error():
        return _tables.table_format(path)


def read_table(path) -> pd.DataFrame:
    """The whole file as a DataFrame (fit and compare need all rows in memory)."""
    with _suffix_is_usage_error():
        return _tables.read_table(path)


def iter_table(path, chunk_size: int):
    """Yield DataFrames of at most ``chunk_size`` rows (bounded memory), indexed by position."""
    with _suffix_is_usage_error():
        yield from _tables.iter_table(path, chunk_size)


def atomic_table_writer(out):
    """A writer to a temporary file next to ``out``, renamed over ``out`` on success only."""
    table_format(Path(out))
    return _tables.atomic_table_writer(out)


def plain_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Category columns as plain object columns, as a CSV file gives them.

    The models treat both as categorical; the logged model's input signature
    (and so scoring from CSV and REST) expects plain strings.
    """
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if not categorical:
        return frame
    return frame.astype({c: object for c in categorical})


def check_columns(frame: pd.DataFrame, columns, path, option: str) -> None:
    for column in columns:
        if column is not None and column not in frame.columns:
            shown = ", ".join(map(str, list(frame.columns)[:20]))
            more = " ..." if frame.shape[1] > 20 else ""
            raise DataValidationError(
                f"{option} {column!r} is not a column of {str(path)!r}; its columns: {shown}{more}."
            )


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path, a symlink to it or a hard link."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwriting(outputs: dict, inputs: dict) -> None:
    """Raise a usage error when an output would replace an input or another output.

    ``outputs`` and ``inputs`` map an option name (``"--out"``) to a path or
    None; inputs that are not existing files (a model URI) are skipped. A
    symlink or hard link to an input counts as the input: the output is
    renamed into place at the end, which would replace the input's contents
    (or the link to them) with scores.
    """
    import click

    named_outputs = [(option, Path(path).expanduser()) for option, path in outputs.items()
                     if path is not None]
    named_inputs = [(option, Path(path).expanduser()) for option, path in inputs.items()
                    if path is not None and Path(path).expanduser().is_file()]
    for out_option, out in named_outputs:
        for in_option, source in named_inputs:
            if _same_file(out, source):
                also = "" if str(out) == str(source) else f" ({str(source)!r})"
                raise click.UsageError(
                    f"{out_option} {str(out)!r} is the {in_option} file{also}: writing it would "
                    f"destroy the input. Choose another {out_option} path."
                )
    for k, (option_a, a) in enumerate(named_outputs):
        for option_b, b in named_outputs[k + 1:]:
            if _same_file(a, b):
                raise click.UsageError(
                    f"{option_a} and {option_b} both name {str(a)!r}; give them different paths."
                )


def is_model_uri(text: str) -> bool:
    return "://" in text or text.startswith(("runs:/", "models:/"))


def is_model_file(text: str) -> bool:
    """Whether ``text`` names a file (an :func:`aepipe.save` model), not a URI or folder."""
    return not is_model_uri(text) and Path(text).expanduser().is_file()


def _anomaly_model_from_file(path: Path):
    """An AnomalyModel around a detector read by :func:`aepipe.load` (no unpickling)."""
    from .._persistence import load
    from .._tabular import GAUSSIAN
    from ..tracking import AnomalyModel

    estimator = load(path)
    names = getattr(estimator, "feature_names_in_", None)
    columns = ([str(c) for c in names] if names is not None
               else [f"x{j}" for j in range(estimator.n_features_in_)])
    layout = getattr(estimator, "layout_", None)
    # Real-valued columns are checked as numbers here; the rest by the detector itself.
    numeric = columns if layout is None else [c.name for c in layout.columns
                                              if c.kind == GAUSSIAN]
    # A windowed detector also reads its time and series columns, which are not features.
    columns = columns + [c for c in (getattr(estimator, "time_column", None),
                                     getattr(estimator, "series_column", None))
                         if c is not None and c not in columns]
    return AnomalyModel(estimator, columns=columns, numeric_columns=numeric,
                        feature_names=names is not None)


def load_anomaly_model(model: str, tracking_uri: str | None):
    """The AnomalyModel for a URI, a local MLflow model folder or an aepipe model file."""
    from ..tracking import load_model

    if not is_model_uri(model):
        path = Path(model).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"Model {model!r} is neither an MLflow model URI (runs:/..., models:/...) "
                "nor an existing model folder or aepipe model file."
            )
        if path.is_file():
            with path.open("rb") as f:
                is_zip = f.read(4) == b"PK\x03\x04"  # a damaged zip still says why on load
            if not is_zip:
                raise DataValidationError(
                    f"{model!r} is not an MLflow model folder nor an aepipe model file "
                    "(written by aepipe.save); pass a models:/ or runs:/ URI, a model "
                    "folder, or such a file."
                )
            return _anomaly_model_from_file(path)
        if not (path / "MLmodel").is_file():
            raise DataValidationError(
                f"{model!r} is not an MLflow model folder (no MLmodel file in it)."
            )
        model = str(path.resolve())
    pyfunc = load_model(model, tracking_uri=tracking_uri)
    python_model = pyfunc.unwrap_python_model()
    if not hasattr(python_model, "validate") or not hasattr(python_model, "pipeline"):
        raise DataValidationError(
            f"{model!r} is an MLflow model but not an aepipe anomaly model "
            "(log one with `aepipe fit` or aepipe.tracking.track_fit)."
        )
    return python_model
