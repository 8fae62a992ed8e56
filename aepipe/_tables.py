"""Table files: one registry of formats by suffix, and chunks carrying context rows.

Every command and function that reads or writes a table file (``aepipe
score``, ``explain``, ``neighbors``, ``fit``, and Dask scoring with
:func:`aepipe.distributed.score_file_distributed`) goes through this module,
so a file format is added in one place: subclass :class:`TableFormat` and
register it::

    class JsonLines(TableFormat):
        name, suffixes = "json-lines", (".jsonl",)

        def read(self, path):
            return pd.read_json(path, lines=True)

        def open_writer(self, path):
            return _JsonLinesWriter(path)   # write(frame) appends, close() finishes

    register_table_format(JsonLines())

:func:`read_table`, :func:`iter_table` and :func:`atomic_table_writer` then
accept ``.jsonl`` paths; :meth:`TableFormat.read_dask` and
:meth:`TableFormat.write_dask` make it usable on a Dask cluster too.

:func:`chunks_with_context` is the one generator that scores a stream in
chunks when each row needs its neighbours (a windowed detector scores a row
from windows reaching ``width - 1`` rows to either side): the CLI streams a
file through it, and Dask scores each partition through it with rows
borrowed from the neighbouring partitions.

This is a leaf module: pandas and (lazily) pyarrow and dask, no aepipe layer.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from ._files import default_file_mode
from .exceptions import DataValidationError

__all__ = [
    "ChunkInContext",
    "TableFormat",
    "UnsupportedTableFormat",
    "atomic_table_writer",
    "chunks_with_context",
    "existing_table",
    "iter_table",
    "read_table",
    "register_table_format",
    "table_format",
    "table_suffixes",
]

# Errors a reader raises for a file it cannot parse (not for a missing file).
_PARSE_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)


# ---------------------------------------------------------------- the registry
class UnsupportedTableFormat(ValueError):
    """A path whose suffix no registered :class:`TableFormat` claims."""

    def __init__(self, path):
        self.path = path
        self.suffixes = table_suffixes()
        super().__init__(f"{str(path)!r} has an unsupported suffix; use one of "
                         f"{', '.join(self.suffixes)}.")


class TableFormat:
    """How to read and write one table file format; register an instance to use it.

    Subclasses set ``name`` and ``suffixes`` (lower case, with the dot) and
    implement :meth:`read` and :meth:`open_writer`; the rest have defaults.
    Readers raise pandas' parser errors or ``UnicodeDecodeError`` for a file
    they cannot parse: the callers turn those into one-line
    :class:`~aepipe.exceptions.DataValidationError`.
    """

    name: str = ""
    suffixes: tuple[str, ...] = ()
    #: Whether a directory with one of ``suffixes`` is a table (a Parquet dataset).
    reads_directories: bool = False

    def read(self, path: Path) -> pd.DataFrame:
        """The whole table."""
        raise NotImplementedError

    def iter_chunks(self, path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
        """Frames of at most ``chunk_size`` rows; default: :meth:`read`, then sliced."""
        frame = self.read(path)
        for start in range(0, max(len(frame), 1), chunk_size):
            yield frame.iloc[start:start + chunk_size]

    def open_writer(self, path: Path):
        """An object whose ``write(frame)`` appends rows to ``path`` and ``close()`` ends it."""
        raise NotImplementedError

    def read_dask(self, path: str, blocksize):
        """A Dask DataFrame over ``path`` (a file, directory or glob)."""
        raise ValueError(f"{self.name} files cannot be read with Dask yet.")

    def write_dask(self, ddf, path: str, single_file: bool):
        """Lazy writes of ``ddf`` to ``path``, the lazy row count, and a step to run after.

        Returns ``(writes, n_rows, finish)``: ``dask.compute(*writes, n_rows)``
        writes the files (one graph, each partition computed once), then
        ``finish()`` completes ``path`` (e.g. merges part files, which it may
        stage in the directory ``path + ".d"``; the caller removes it). With
        ``single_file=False`` ``path`` is a directory of part files named in
        partition order. ``path`` ends with one of :attr:`suffixes`.
        """
        raise ValueError(f"{self.name} files cannot be written with Dask yet.")


_FORMATS: dict[str, TableFormat] = {}


def register_table_format(table_format: TableFormat, *, replace: bool = False) -> TableFormat:
    """Make every file-reading and -writing function accept ``table_format.suffixes``."""
    for suffix in table_format.suffixes:
        if not suffix.startswith(".") or suffix != suffix.lower():
            raise ValueError(f"suffix {suffix!r} of {table_format.name!r} must be lower case "
                             "and start with a dot, e.g. '.csv'.")
        if suffix in _FORMATS and not replace:
            raise ValueError(f"suffix {suffix!r} is taken by the {_FORMATS[suffix].name!r} "
                             "format; pass replace=True to take it over.")
    for suffix in table_format.suffixes:
        _FORMATS[suffix] = table_format
    return table_format


def table_suffixes() -> tuple[str, ...]:
    """The registered suffixes, in order of registration."""
    return tuple(_FORMATS)


def table_format(path) -> TableFormat:
    """The format registered for ``path``'s suffix (the longest that matches: ``.csv.gz``)."""
    name = Path(path).name.lower()
    matches = [suffix for suffix in _FORMATS if name.endswith(suffix)]
    if not matches:
        raise UnsupportedTableFormat(path)
    return _FORMATS[max(matches, key=len)]


# ---------------------------------------------------------------- reading and writing
def existing_table(path) -> Path:
    """``path`` expanded, checked to exist and to be of a registered format."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"Data file not found: {str(path)!r}.")
    if path.is_dir() and not table_format(path).reads_directories:
        raise DataValidationError(f"Data path {str(path)!r} is a directory, not a file.")
    table_format(path)
    return path


def _unreadable(path, exc: BaseException) -> DataValidationError:
    return DataValidationError(f"Cannot read {str(path)!r}: {str(exc).splitlines()[0]}")


def read_table(path) -> pd.DataFrame:
    """The whole file as a DataFrame; a file that cannot be parsed or has no rows is refused."""
    path = existing_table(path)
    try:
        frame = table_format(path).read(path)
    except (FileNotFoundError, DataValidationError):  # the latter names what is wrong already
        raise
    except (*_PARSE_ERRORS, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    if frame.empty:
        raise DataValidationError(f"{str(path)!r} has no rows.")
    return frame


def iter_table(path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_size`` rows (bounded memory), indexed by row position.

    Row ``i`` of the file has index ``i`` whatever the format, so the
    callers name rows by their 0-based position in the file.
    """
    path = existing_table(path)
    start = 0
    try:
        for frame in table_format(path).iter_chunks(path, chunk_size):
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield frame
    except _PARSE_ERRORS as exc:
        raise _unreadable(path, exc) from None


@contextmanager
def atomic_table_writer(out):
    """A writer to a temporary file next to ``out``, renamed over ``out`` on success only."""
    out = Path(out).expanduser()
    fmt = table_format(out)
    if not out.parent.exists():
        raise FileNotFoundError(f"Output folder does not exist: {str(out.parent)!r}.")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    os.chmod(tmp, default_file_mode())  # mkstemp's 0o600 would survive the rename
    tmp_path = Path(tmp)
    # Keep the suffix so the writer picks the compression (".csv.gz") of the final name.
    staged = tmp_path.with_name(tmp_path.name + "".join(out.suffixes))
    os.replace(tmp_path, staged)
    writer = fmt.open_writer(staged)
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


# ---------------------------------------------------------------- CSV and Parquet
def _csv_sep(path) -> str:
    """The separator written to ``path``: a tab for ``.tsv``, else a comma."""
    return "\t" if str(path).lower().endswith(".tsv") else ","


# Separators read from a ".csv" whose header line has no comma (SKAB and many
# European exports use ";").
_OTHER_SEPARATORS = ";\t|"


def _header_line(path) -> str:
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as f:
        return f.readline()


def _csv_read_options(path) -> dict:
    """``pandas.read_csv`` options for the text table ``path``, its header checked.

    The separator is a tab for ``.tsv``; otherwise a comma, unless the header
    line has none but has ``;``, a tab or ``|``: then that one (decimal commas
    are not read as numbers: see :func:`_refuse_formatted_numbers`). Duplicated
    column names are refused: pandas would rename the second ``amount`` to
    ``amount.1``, a column no one wrote.
    """
    line = _header_line(path)
    sep = _csv_sep(path)
    if sep == "," and "," not in line and any(c in line for c in _OTHER_SEPARATORS):
        try:
            sep = csv.Sniffer().sniff(line, delimiters=_OTHER_SEPARATORS).delimiter
        except csv.Error:
            sep = max(_OTHER_SEPARATORS, key=line.count)
    names = next(csv.reader([line.rstrip("\r\n")], delimiter=sep), [])
    seen, duplicated = set(), []
    for name in names:
        if name in seen and name not in duplicated and name != "":  # pandas names "" columns
            duplicated.append(name)
        seen.add(name)
    if duplicated:
        raise DataValidationError(
            f"{str(path)!r} has duplicated column names {duplicated!r} in its header; aepipe "
            "matches columns by name, so each needs its own: rename or drop the repeated "
            "columns."
        )
    return {"sep": sep}


_DECIMAL_COMMA = r"[+-]?\d[\d.]*,\d+(?:[eE][+-]?\d+)?"  # 1,5  -0,25  1.234,5
_THOUSANDS = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 1,166.63  -12,000
_PLAIN_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
# Any number, plain or formatted: a column whose first value is not one is text.
_ANY_NUMBER = re.compile(f"{_DECIMAL_COMMA}|{_THOUSANDS}|{_PLAIN_NUMBER}")


def _refuse_formatted_numbers(frame: pd.DataFrame, path, sep: str) -> pd.DataFrame:
    """``frame``, unless a text column holds numbers written for people, which read as text
    would become categories (or look like record ids): with decimal commas, in a ``.csv``
    separated by ``sep`` (not by commas, the separator read from its header), or with
    thousands separators (``"1,166.63"``, quoted in a comma-separated file)."""
    decimal_commas = sep != _csv_sep(path)  # else commas in values are text
    for name in frame.columns:
        column = frame[name]
        if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
            continue
        text = column.dropna()
        if not len(text) or not isinstance(text.iloc[0], str) or not _ANY_NUMBER.fullmatch(
                text.iloc[0]):
            continue  # text (the usual case, decided by one value), or no values
        if not all(isinstance(v, str) for v in text):
            continue
        for pattern, written, fix in (
                (_DECIMAL_COMMA if decimal_commas else None, "with a decimal comma",
                 f"e.g. pandas.read_csv(path, sep={sep!r}, decimal=',')"),
                (_THOUSANDS, "with thousands separators",
                 "e.g. pandas.read_csv(path, thousands=',')")):
            if pattern is None:
                continue
            formatted = text.str.fullmatch(pattern)
            if formatted.any() and (formatted | text.str.fullmatch(_PLAIN_NUMBER)).all():
                row = formatted.index[formatted.to_numpy()][0]
                raise DataValidationError(
                    f"Column {name!r} of {str(path)!r} holds numbers written {written} "
                    f"({text[row]!r} at row {row}); aepipe reads plain numbers with '.' as the "
                    f"decimal point. Convert the file first, {fix}"
                    ".to_csv(new_path, index=False)."
                )
    return frame


class _CsvWriter:
    def __init__(self, path: Path):
        self.path, self._header = path, True

    def write(self, frame: pd.DataFrame) -> None:
        frame.to_csv(self.path, mode="w" if self._header else "a", header=self._header,
                     index=False, sep=_csv_sep(self.path))
        self._header = False

    def close(self) -> None:
        pass


class CsvFormat(TableFormat):
    """Comma-separated text (tab-separated for ``.tsv``; gzip for ``.csv.gz``).

    Read with the separator of the header line: a ``.csv`` separated by ``;``,
    tabs or ``|`` is read too (see :func:`_csv_read_options`); written with commas.
    """

    name, suffixes = "csv", (".csv", ".csv.gz", ".tsv", ".txt")

    def read(self, path):
        options = _csv_read_options(path)
        return _refuse_formatted_numbers(pd.read_csv(path, **options), path, options["sep"])

    def iter_chunks(self, path, chunk_size):
        options = _csv_read_options(path)
        # The chunks' index continues from chunk to chunk: it is the row of the file.
        with pd.read_csv(path, chunksize=chunk_size, **options) as reader:
            for chunk in reader:
                yield _refuse_formatted_numbers(chunk, path, options["sep"])

    def open_writer(self, path):
        return _CsvWriter(path)

    def read_dask(self, path, blocksize):
        import dask.dataframe as dd

        # gzip cannot be split: one partition per file.
        compressed = path.lower().endswith(".gz")
        # One file is read as read() reads it; a directory or glob with the suffix's separator.
        options = _csv_read_options(path) if os.path.isfile(path) else {"sep": _csv_sep(path)}
        return dd.read_csv(path, blocksize=None if compressed else blocksize, **options)

    def write_dask(self, ddf, path, single_file):
        # ``to_csv`` returns delayed objects, which Dask optimises apart from
        # expressions: go through the partitions as delayed objects so the
        # writes and the count share them.
        import dask
        import dask.dataframe as dd

        parts = ddf.to_delayed()
        shared = dd.from_delayed(parts, meta=ddf._meta, divisions=None, verify_meta=False)
        options = dict(index=False, sep=_csv_sep(path), compute=False,
                       compression="gzip" if path.lower().endswith(".gz") else None)
        if single_file:
            writes = shared.to_csv(path, single_file=True, **options)
        else:
            os.mkdir(path)
            suffix = _matched_suffix(self, path)
            writes = shared.to_csv(os.path.join(path, f"part.*{suffix}"),
                                   name_function=_part_name, **options)
        n_rows = dask.delayed(sum)([dask.delayed(len)(part) for part in parts])
        return list(writes), n_rows, lambda: None


class _ParquetWriter:
    def __init__(self, path: Path):
        self.path, self._writer, self._schema = path, None, None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.path, self._schema)
        else:
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ParquetFormat(TableFormat):
    """Apache Parquet: a file, or a dataset directory of files."""

    name, suffixes, reads_directories = "parquet", (".parquet", ".pq"), True

    def read(self, path):
        return pd.read_parquet(path)

    def iter_chunks(self, path, chunk_size):
        import pyarrow.parquet as pq

        files = pq.ParquetDataset(path).files if Path(path).is_dir() else [path]
        for file in files:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=chunk_size):
                yield batch.to_pandas()

    def open_writer(self, path):
        return _ParquetWriter(path)

    def read_dask(self, path, blocksize):
        import dask.dataframe as dd

        return dd.read_parquet(path)

    def write_dask(self, ddf, path, single_file):
        # The workers always write a dataset directory; one file is merged from it after.
        directory = f"{path}.d" if single_file else path
        write = ddf.to_parquet(directory, write_index=False, compute=False,
                               name_function=lambda i: f"part.{_part_name(i)}.parquet")

        def finish():
            if single_file:
                _merge_parquet(Path(directory), Path(path))

        return [write], ddf.map_partitions(len).sum(), finish


def _matched_suffix(fmt: TableFormat, path) -> str:
    name = str(path).lower()
    return max((suffix for suffix in fmt.suffixes if name.endswith(suffix)), key=len)


def _part_name(i: int) -> str:
    # Zero-padded so a plain directory listing keeps the row order.
    return f"{i:06d}"


def _merge_parquet(directory: Path, out_file: Path) -> None:
    """Concatenate a dataset directory's files, row group by row group, into one file."""
    import pyarrow.parquet as pq

    writer = None
    try:
        for part in sorted(directory.glob("*.parquet")):
            source = pq.ParquetFile(part)
            if writer is None:
                writer = pq.ParquetWriter(out_file, source.schema_arrow)
            for group in range(source.num_row_groups):
                writer.write_table(source.read_row_group(group))
    finally:
        if writer is not None:
            writer.close()


register_table_format(CsvFormat())
register_table_format(ParquetFormat())


# ---------------------------------------------------------------- chunks in context
class ChunkInContext(NamedTuple):
    """Rows ``first:stop`` of ``frame`` are the chunk's own; the rest are context.

    Score the whole ``frame`` and keep rows ``first:stop`` of the result
    (:meth:`own`): each kept row was scored with its neighbours present.
    """

    frame: pd.DataFrame
    first: int
    stop: int

    @property
    def body(self) -> pd.DataFrame:
        """The chunk's own rows."""
        return self.frame.iloc[self.first:self.stop]

    def own(self, scored):
        """The rows of ``scored`` (row-aligned with ``frame``) that belong to the chunk."""
        return scored.iloc[self.first:self.stop]


def _concat(frames) -> pd.DataFrame:
    present = [f for f in frames if f is not None and len(f)]
    if not present:
        return next(f for f in frames if f is not None)
    return pd.concat(present) if len(present) > 1 else present[0]


def chunks_with_context(chunks: Iterable[pd.DataFrame], context: int, *,
                        before: pd.DataFrame | None = None,
                        after: pd.DataFrame | None = None) -> Iterator[ChunkInContext]:
    """Yield each row of ``chunks`` once, with up to ``context`` rows on each side.

    With ``context > 0`` (a windowed detector: ``width - 1``) every yielded
    frame carries up to ``context`` rows before its own rows and holds back
    its last ``context`` rows, which become the next frame's own rows: each
    row is scored from the same windows as when the whole stream is scored
    at once, whatever the chunk sizes. The stream's first rows get
    ``before``'s last ``context`` rows as context and its last rows
    ``after`` (neither is yielded as own rows): Dask scores one partition
    with its neighbours' rows this way. One chunk is read ahead, so the last
    chunk's rows come out together; memory holds two chunks.

    With ``context == 0`` every chunk is yielded as it comes, empty ones too.

    Parameters
    ----------
    chunks : iterable of DataFrame
        Consecutive pieces of one table, in order.
    context : int
        Rows of context wanted on each side (>= 0).
    before, after : DataFrame, default=None
        Rows that precede and follow the stream, with its columns.

    Yields
    ------
    chunk : ChunkInContext
        ``(frame, first, stop)``; ``frame.iloc[first:stop]`` are its own rows.
        Concatenated, the own rows are the input rows in order.
    """
    if context < 0:
        raise ValueError(f"context={context} must be >= 0.")
    if context == 0:
        for chunk in chunks:
            yield ChunkInContext(chunk, 0, len(chunk))
        return
    left = before.iloc[max(0, len(before) - context):] if before is not None else None
    after = after.iloc[:context] if after is not None else None
    pending = None  # rows read but not yet yielded as own rows
    chunks = iter(chunks)
    current = next(chunks, None)
    while current is not None:
        following = next(chunks, None)
        last = following is None
        n_left = 0 if left is None else len(left)
        end = n_left + (0 if pending is None else len(pending)) + len(current)  # of the stream
        frame = _concat([left, pending, current, after if last else None])
        # Hold back the last `context` rows until the rows after them are read.
        stop = end if last else max(n_left, end - context)
        if stop > n_left:
            yield ChunkInContext(frame, n_left, stop)
        left = frame.iloc[max(0, stop - context):stop]
        pending = frame.iloc[stop:end]
        current = following
