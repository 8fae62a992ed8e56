"""Reading tables, streaming them in chunks, writing results atomically, finding models."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import click
import pandas as pd

from .._files import default_file_mode
from ..exceptions import DataValidationError

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise click.BadParameter(
        f"{str(path)!r} has an unsupported suffix; use one of "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}.",
        param_hint="file",
    )


def _csv_sep(path: Path) -> str:
    return "\t" if path.name.lower().endswith(".tsv") else ","


def existing_data(path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"Data file not found: {str(path)!r}.")
    if path.is_dir() and table_format(path) != "parquet":
        raise DataValidationError(f"Data path {str(path)!r} is a directory, not a file.")
    table_format(path)
    return path


def read_table(path) -> pd.DataFrame:
    """The whole file as a DataFrame (fit and compare need all rows in memory)."""
    path = existing_data(path)
    try:
        if table_format(path) == "csv":
            frame = pd.read_csv(path, sep=_csv_sep(path))
        else:
            frame = pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"Cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataValidationError(f"Cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise DataValidationError(f"{str(path)!r} has no rows.")
    return frame


def iter_table(path, chunk_size: int):
    """Yield DataFrames of at most ``chunk_size`` rows (bounded memory)."""
    path = existing_data(path)
    try:
        if table_format(path) == "csv":
            reader = pd.read_csv(path, sep=_csv_sep(path), chunksize=chunk_size)
            with reader:
                yield from reader
        else:
            import pyarrow.parquet as pq

            start = 0
            dataset = pq.ParquetDataset(path) if path.is_dir() else None
            files = [pq.ParquetFile(f) for f in dataset.files] if dataset else [pq.ParquetFile(path)]
            for parquet in files:
                for batch in parquet.iter_batches(batch_size=chunk_size):
                    frame = batch.to_pandas()
                    frame.index = pd.RangeIndex(start, start + len(frame))
                    start += len(frame)
                    yield frame
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"Cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None


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


class _TableWriter:
    """Appends DataFrames to a CSV or Parquet file."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind
        self._header = True
        self._parquet = None
        self._schema = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            frame.to_csv(self.path, mode="w" if self._header else "a", header=self._header,
                         index=False, sep=_csv_sep(self.path))
            self._header = False
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        else:
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()


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


@contextmanager
def atomic_table_writer(out):
    """A writer to a temporary file next to ``out``, renamed over ``out`` on success only."""
    out = Path(out).expanduser()
    kind = table_format(out)
    if not out.parent.exists():
        raise FileNotFoundError(f"Output folder does not exist: {str(out.parent)!r}.")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    os.chmod(tmp, default_file_mode())  # mkstemp's 0o600 would survive the rename
    tmp_path = Path(tmp)
    # Keep the suffix so pandas picks the compression (".csv.gz") of the final name.
    staged = tmp_path.with_name(tmp_path.name + "".join(out.suffixes))
    os.replace(tmp_path, staged)
    writer = _TableWriter(staged, kind)
    try:
        yield writer
        writer.close()
        os.replace(staged, out)
    except BaseException:
        try:
            writer.close()
        finally:
            staged.unlink(missing_ok=True)
        raise


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
