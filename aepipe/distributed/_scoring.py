"""Partitioned scoring: a fitted model over a Dask DataFrame, and file to file on a cluster."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from .._tables import UnsupportedTableFormat, chunks_with_context, table_format, table_suffixes
from ._cluster import _check_torch_threads, _require_distributed, torch_threads_on

_logger = logging.getLogger(__name__)

_LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")


# ---------------------------------------------------------------- scorers
class _ModelScorer:
    """``score_frame`` of a fitted detector or pipeline (picklable, shipped to workers)."""

    def __init__(self, model, top_k: int):
        self.model = model
        self.top_k = top_k

    @property
    def context(self) -> int:
        from ..sensor import window_context

        return window_context(self.model)

    @property
    def series_column(self):
        from ..sensor import series_column_of

        return series_column_of(self.model)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        from ..scoring import score_frame

        return score_frame(self.model, frame, top_k=self.top_k)


class _PyfuncScorer:
    """An MLflow model whose ``predict`` returns the ``score_frame`` table.

    aepipe's own models are called through their Python model (as ``aepipe
    score`` does), so their input checks apply unchanged: unexpected or
    missing columns fail rather than being dropped by MLflow's schema
    enforcement. Other pyfunc models go through ``PyFuncModel.predict``.
    """

    def __init__(self, pyfunc_model, top_k: int):
        try:
            python_model = pyfunc_model.unwrap_python_model()
        except Exception:  # not a Python-function model: use the generic predict
            python_model = None
        if python_model is not None and hasattr(python_model, "validate"):
            # aepipe's AnomalyModel takes top_k at construction; this copy is ours.
            python_model.top_k = top_k
            self.python_model, self.pyfunc_model = python_model, None
        else:
            self.python_model, self.pyfunc_model = None, pyfunc_model

    @property
    def context(self) -> int:
        from ..sensor import window_context

        return window_context(self.python_model) if self.python_model is not None else 0

    @property
    def series_column(self):
        from ..sensor import series_column_of

        return series_column_of(self.python_model) if self.python_model is not None else None

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.python_model is not None:
            out = self.python_model.predict(None, frame)
        else:
            out = self.pyfunc_model.predict(frame)
        if not isinstance(out, pd.DataFrame):
            out = pd.DataFrame(out)
        out.index = frame.index
        return out


_LOADED: dict = {}


class _UriScorer:
    """Loads an MLflow model on the worker itself, once per worker process."""

    def __init__(self, model_uri: str, tracking_uri: str, top_k: int, context: int = 0,
                 series_column=None):
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.top_k = top_k
        self.context = context
        self.series_column = series_column

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        key = (self.model_uri, self.tracking_uri, self.top_k)
        if key not in _LOADED:
            _LOADED[key] = _PyfuncScorer(_load_pyfunc(self.model_uri, self.tracking_uri),
                                         self.top_k)
        return _LOADED[key](frame)


def _load_pyfunc(model_uri: str, tracking_uri: str | None):
    from ..tracking import load_model

    return load_model(model_uri, tracking_uri=tracking_uri)


def _scorer_for(model, top_k: int, tracking_uri: str | None = None):
    """A picklable callable ``frame -> score table`` for a model or an MLflow model URI."""
    if isinstance(model, (str, os.PathLike)):
        from ..tracking import resolve_tracking_uri

        model_uri = os.fspath(model)
        # Absolute, so workers with another working directory find the same store.
        tracking_uri = resolve_tracking_uri(tracking_uri)
        scorer = _PyfuncScorer(_load_pyfunc(model_uri, tracking_uri), top_k)
        try:
            import cloudpickle

            cloudpickle.dumps(scorer)
        except Exception:  # not shippable: every worker loads it from the store instead
            _logger.info("Model %s cannot be pickled; workers load it themselves", model_uri)
            return _UriScorer(model_uri, tracking_uri, top_k, scorer.context,
                              scorer.series_column)
        return scorer
    if not (hasattr(model, "score_samples") and hasattr(model, "predict")):
        raise TypeError(
            f"model={type(model).__name__} must be a fitted outlier detector (or a Pipeline "
            "ending in one) with score_samples and predict, or an MLflow model URI."
        )
    return _ModelScorer(model, top_k)


# ---------------------------------------------------------------- partitions
def _score_partition(part: pd.DataFrame, scorer, dtypes: dict, id_column) -> pd.DataFrame:
    if len(part) == 0:  # detectors reject empty tables; an empty partition scores to nothing
        out = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})
        out.index = part.index
        return out
    scores = _score_partition_raw(scorer, part, id_column)
    # Every partition carries the meta's dtypes (e.g. a partition with no
    # anomaly must still give a bool column), so concatenation is exact.
    return scores.astype(dtypes)


def _concat(frames) -> pd.DataFrame:
    nonempty = [f for f in frames if len(f)]
    return pd.concat(nonempty) if len(nonempty) > 1 else (nonempty or frames)[0]


def _last_rows(before: pd.DataFrame, tail: pd.DataFrame, n: int) -> pd.DataFrame:
    return _concat([before, tail]).tail(n)


def _rows_after(n: int, more: bool, empty: pd.DataFrame, *heads: pd.DataFrame) -> pd.DataFrame:
    rows = _concat([empty, *heads]).head(n)
    if len(rows) < n and more:
        raise ValueError(
            f"{len(heads)} consecutive partitions hold only {len(rows)} rows together, fewer "
            f"than the {n} rows of context a windowed model needs after each row: use fewer, "
            "larger partitions (a larger blocksize, or ddf.repartition)."
        )
    return rows


def _score_partition_in_context(before, part, after, context, scorer, dtypes, id_column):
    """Score ``part`` with its neighbouring rows, keep ``part``'s rows."""
    # One partition is a one-chunk stream with its neighbours' rows around it:
    # the generator `aepipe score` streams a file through yields it whole.
    chunks = list(chunks_with_context([part], context, before=before, after=after))
    if not chunks:  # an empty partition
        return _score_partition(part, scorer, dtypes, id_column)
    (chunk,) = chunks
    scores = chunk.own(_score_partition(chunk.frame, scorer, dtypes, id_column))
    scores.index = part.index
    return scores


_LOOKAHEAD = 8


def _score_with_context(ddf, context: int, scorer, dtypes, id_column, meta):
    """Score each partition with ``context`` rows of its neighbours on each side.

    A windowed detector scores a row from windows reaching ``width - 1``
    rows to either side, so a partition is scored together with that many
    rows of the partitions around it, and only its own rows are kept: the
    scores do not depend on the partitioning. The neighbouring rows are
    gathered from each partition's first and last ``context`` rows (only those
    move between workers; each partition is still read once): the rows before
    come along a chain through all earlier partitions, the rows after from at
    most ``_LOOKAHEAD`` following ones, so partitions shorter than the window
    or empty work, and scoring holds a bounded number of partitions.
    """
    import dask
    import dask.dataframe as dd

    parts = ddf.to_delayed()
    n_parts, empty = len(parts), ddf._meta
    # Each partition's edges are cut where it lies; only those small frames travel.
    tails = [dask.delayed(pd.DataFrame.tail, pure=True)(part, context) for part in parts]
    heads = [dask.delayed(pd.DataFrame.head, pure=True)(part, context) for part in parts]
    before = [empty]
    for tail in tails[:-1]:
        before.append(dask.delayed(_last_rows, pure=True)(before[-1], tail, context))
    # The rows after a partition come from at most _LOOKAHEAD following ones, so
    # scoring a partition never waits for (and holds) the rest of the data.
    after = [
        dask.delayed(_rows_after, pure=True)(
            context, i + 1 + _LOOKAHEAD < n_parts, empty, *heads[i + 1:i + 1 + _LOOKAHEAD])
        for i in range(n_parts)
    ]
    scored = [
        dask.delayed(_score_partition_in_context, pure=True)(
            b, part, a, context, scorer, dtypes, id_column)
        for b, part, a in zip(before, parts, after)
    ]
    return dd.from_delayed(scored, meta=meta, divisions=ddf.divisions, verify_meta=False)


# Hidden columns that carry each row's place in the input through the shuffle.
_PARTITION, _POSITION = "__aepipe_partition", "__aepipe_position"
# The input's row numbers, kept beside a user's id column while a fleet is shuffled.
_ROW = "__aepipe_row"


def _with_place(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    out = part.copy()
    out[_PARTITION] = np.int64(partition_info["number"] if partition_info else 0)
    out[_POSITION] = np.arange(len(part), dtype=np.int64)
    return out


def _score_series_partition(part: pd.DataFrame, scorer, dtypes: dict, id_column) -> pd.DataFrame:
    """Score whole series: ``part``'s rows back in input order, each series scored entire."""
    part = part.sort_values([_PARTITION, _POSITION], kind="stable")
    part = part.drop(columns=[_PARTITION, _POSITION])
    return _score_partition(part, scorer, dtypes, id_column)


def _score_by_series(ddf, series_column: str, scorer, dtypes, id_column, meta):
    """Score a model with a series column: every series whole, in one partition.

    The rows are shuffled by series (a series' rows may sit in any
    partitions of ``ddf``, interleaved with other series), put back in
    their input order within each partition, and scored there, so every
    series is scored as a whole stream, as in memory. The output's
    partitions hold whole series; its index is ``ddf``'s.
    """
    placed = ddf.map_partitions(_with_place, meta=_with_place(ddf._meta))
    grouped = placed.shuffle(on=series_column)
    return grouped.map_partitions(_score_series_partition, scorer, dtypes, id_column,
                                  meta=meta, align_dataframes=False)


def _infer_meta(scorer, ddf, id_column) -> pd.DataFrame:
    """The empty output frame, from scoring a synthetic row, else the first real rows.

    A windowed model needs a whole window: it scores the first ``width``
    rows of the data (from as many partitions as that takes).
    """
    from dask.dataframe.utils import meta_nonempty

    n_rows = scorer.context + 1
    if n_rows == 1:
        try:
            return _score_partition_raw(scorer, meta_nonempty(ddf._meta), id_column).iloc[:0]
        except Exception:  # e.g. a categorical model rejects the synthetic 'foo' category
            _logger.debug("Synthetic meta row rejected; computing the first rows",
                          exc_info=True)
        n_rows = 2
    sample = ddf.head(n_rows, npartitions=-1 if n_rows > 2 else 1, compute=True)
    if len(sample) == 0:
        raise ValueError(
            "Could not infer the output columns: the first partition is empty and the "
            "model rejects synthetic rows; pass meta= explicitly."
        )
    return _score_partition_raw(scorer, sample, id_column).iloc[:0]


def _score_partition_raw(scorer, part, id_column):
    """Score ``part``; ``id_column`` (a name or a list of names) is passed through, first."""
    passed = [] if id_column is None else [id_column] if isinstance(id_column, str) \
        else list(id_column)
    scores = scorer(part.drop(columns=passed) if passed else part)
    for position, name in enumerate(passed):
        scores.insert(position, name, part[name].to_numpy())
    return scores


def _check_id_column(ddf, id_column) -> None:
    if id_column is not None and id_column not in ddf.columns:
        raise ValueError(
            f"id_column={id_column!r} is not a column of the data; columns are "
            f"{list(ddf.columns)[:20]}."
        )


def score_dask(model, ddf, *, top_k: int = 3, id_column: str | None = None, meta=None,
               tracking_uri: str | None = None):
    """Score a Dask DataFrame partition by partition (lazy).

    Each partition is scored with :func:`aepipe.scoring.score_frame` (or the
    MLflow model's ``predict``, which returns the same table). Rows keep
    their partition, position and index, so the result lines up with
    ``ddf`` and equals scoring the whole table in memory. A windowed (sensor)
    model's partitions are scored with ``width - 1`` rows of their neighbours
    on each side (see :func:`aepipe.sensor.window_context`), so its scores do
    not depend on the partitioning either; ``ddf`` must be in time order.

    A model with a series column (a fleet: ``series_column=`` on a windowed
    detector, or a :class:`~aepipe.sensor.PerSeriesDetector`) scores every
    series as one whole stream, as in memory, wherever its rows lie in
    ``ddf`` (interleaved with other series, across partitions): the rows are
    shuffled by series, put back in input order within each series, and
    scored. The result then holds each series in one partition (rows keep
    their index, not their partition), and each worker holds whole series
    in memory. :func:`score_file_distributed` writes them back in input order.

    Parameters
    ----------
    model : fitted detector, Pipeline ending in one, or str
        A fitted model (shipped to the workers once, as one task), or an
        MLflow model URI (``runs:/<id>/model``, ``models:/name/1``, a path),
        loaded here with :func:`aepipe.tracking.load_model`.
    ddf : dask.dataframe.DataFrame of shape (n_samples, n_features)
        The model's input columns (plus ``id_column`` if given).
    top_k : int, default=3
        Number of top contributing columns per record.
    id_column : str, default=None
        A column passed through unscored, first in the output.
    meta : DataFrame, default=None
        The empty output frame. Default: inferred by scoring one synthetic
        row, or the first rows of ``ddf`` when the model rejects it.
    tracking_uri : str, default=None
        MLflow store that resolves a ``runs:/`` or ``models:/`` ``model``
        (see :func:`aepipe.tracking.resolve_tracking_uri`).

    Returns
    -------
    scores : dask.dataframe.DataFrame
        Columns ``[id_column,] anomaly_score, predicted_anomaly, top1_column,
        top1_score, ...``; the partitions and index of ``ddf``.

    Examples
    --------
    >>> import dask.dataframe as dd                                   # doctest: +SKIP
    >>> scores = score_dask(pipeline, dd.read_parquet("records/"))    # doctest: +SKIP
    >>> scores.nlargest(10, "anomaly_score").compute()                # doctest: +SKIP
    """
    _require_distributed()
    _check_id_column(ddf, id_column)
    return _score_with(_scorer_for(model, top_k, tracking_uri), ddf, id_column, meta)


def _score_with(scorer, ddf, id_column, meta=None):
    """:func:`score_dask` with a scorer; ``id_column`` may be a list of passed-through names."""
    import dask

    series = scorer.series_column
    if series is not None and series not in ddf.columns:
        raise ValueError(f"The model's series column {series!r} is not a column of the data; "
                         f"columns are {list(ddf.columns)[:20]}.")
    if meta is None:
        meta = _infer_meta(scorer, ddf, id_column)
    dtypes = {name: dtype for name, dtype in meta.dtypes.items()}
    # One graph node holds the model, so it is sent to each worker once
    # rather than embedded in every partition's task.
    shipped = dask.delayed(scorer, pure=True, traverse=False)
    if series is not None:
        return _score_by_series(ddf, series, shipped, dtypes, id_column, meta)
    context = scorer.context
    if context:
        return _score_with_context(ddf, context, shipped, dtypes, id_column, meta)
    return ddf.map_partitions(
        _score_partition, shipped, dtypes, id_column, meta=meta, align_dataframes=False
    )


# ---------------------------------------------------------------- files
def _read(data_path: str, blocksize):
    """A Dask DataFrame over a file, directory or glob, read as its registered format."""
    try:
        fmt = table_format(data_path.rstrip("/"))
    except UnsupportedTableFormat:
        fmt = None
    if os.path.isdir(data_path) and (fmt is None or not fmt.reads_directories):
        fmt = table_format(".parquet")  # a directory is a Parquet dataset
    elif fmt is None and "*" in data_path:
        fmt = table_format(".csv")  # a glob without a suffix names CSV files
    elif fmt is None:
        raise ValueError(
            f"data_path={data_path!r} must be a file of a registered format "
            f"({', '.join(table_suffixes())}), a Parquet directory, or a glob of them."
        )
    return fmt.read_dask(data_path, blocksize)


def _number_rows(ddf, column: str, scheduler):
    """``ddf`` with a first ``column`` holding each row's 0-based position.

    Partition lengths are counted in a first pass; the partitions are frozen
    as delayed objects first, so both passes see the same partitioning (the
    optimiser may otherwise split a read differently).
    """
    import dask
    import dask.dataframe as dd

    parts = ddf.to_delayed()
    lengths = dask.compute(*[dask.delayed(len)(part) for part in parts], scheduler=scheduler)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)[:-1]]).tolist()
    meta = ddf._meta.copy()
    meta.insert(0, column, np.array([], dtype=np.int64))
    numbered = [dask.delayed(_with_row_numbers)(part, offset, column)
                for part, offset in zip(parts, offsets)]
    return dd.from_delayed(numbered, meta=meta, divisions=None, verify_meta=False)


def _with_row_numbers(part: pd.DataFrame, start: int, column: str) -> pd.DataFrame:
    out = part.copy()
    out.insert(0, column, np.arange(start, start + len(part), dtype=np.int64))
    return out


def _replace(tmp_path: Path, out_path: Path) -> None:
    if out_path.is_dir() and not out_path.is_symlink():
        # A directory cannot be replaced atomically: drop the old result first.
        shutil.rmtree(out_path)
    os.replace(tmp_path, out_path)


def score_file_distributed(
    model,
    data_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    scheduler,
    id_column: str | None = None,
    top_k: int = 3,
    blocksize: str | int = "64MB",
    single_file: bool = True,
    torch_threads: int | None = 1,
    tracking_uri: str | None = None,
) -> int:
    """Score a CSV/Parquet file on a Dask cluster and write the scores; return the row count.

    The input is read lazily in partitions (``dd.read_csv`` /
    ``dd.read_parquet``), each partition is scored on a worker
    (:func:`score_dask`), and the workers write the result to a temporary
    path next to ``out_path`` that is renamed to ``out_path`` only once
    complete: a failed run never leaves a partial file.

    Parameters
    ----------
    model : fitted detector, Pipeline ending in one, or str
        A fitted model or an MLflow model URI (see :func:`score_dask`).
    data_path : str or path
        A ``.csv`` (``.csv.gz``, ``.tsv``) file, a ``.parquet`` file or
        directory, or a glob of CSV files. Workers read it, so it must be on a
        filesystem they share (or an fsspec URL they can reach).
    out_path : str or path
        A file of a registered table format (``.csv``, ``.tsv``, ``.csv.gz``,
        ``.parquet``; see :mod:`aepipe._tables`), on a filesystem the
        workers share (see ``single_file``).
    scheduler : str or distributed.Client
        ``"tcp://host:8786"`` (a client is opened and closed for this call), a
        ``distributed.Client``, or a single-machine Dask scheduler
        (``"threads"``, ``"processes"``, ``"synchronous"``). ``None`` uses the
        default client, or Dask's default scheduler when there is none.
    id_column : str, default=None
        A column copied to the output (first) and not scored. Default: a
        ``row`` column with each record's 0-based position in the input
        (as ``aepipe score`` writes; counting the partitions' rows costs one
        extra pass over the input).
    top_k : int, default=3
    blocksize : str or int, default="64MB"
        CSV bytes per partition.
    single_file : bool, default=True
        One output file, rows in input order (for Parquet the workers write
        one file per partition and this process concatenates them, row group
        by row group). False: ``out_path`` is a directory of part files
        (``part.000000.csv``/``.parquet``, ...), written by the workers only,
        which ``pandas.read_parquet``/``dd.read_csv(out_path + "/*.csv")``
        read back in order.
    torch_threads : int or None, default=1
        Torch threads per worker while scoring on a distributed cluster
        (restored afterwards); None leaves workers alone.
    tracking_uri : str, default=None
        MLflow store for a ``runs:/`` or ``models:/`` ``model`` URI.

    Returns
    -------
    n_rows : int
        Number of records scored.
    """
    _require_distributed()
    _check_torch_threads(torch_threads)
    import dask

    data_path = os.fspath(data_path)
    out = Path(os.fspath(out_path))
    try:
        out_format = table_format(out)
    except UnsupportedTableFormat:
        raise ValueError(f"out_path={os.fspath(out_path)!r} must end in "
                         f"{', '.join(table_suffixes())}.") from None
    if not out.parent.exists():
        raise FileNotFoundError(f"The output directory {out.parent} does not exist.")

    with _scheduler_context(scheduler) as (compute_scheduler, client):
        ddf = _read(data_path, blocksize)
        if id_column is None:
            if "row" in ddf.columns:
                raise ValueError(
                    "The data has a 'row' column, which would clash with the row numbers "
                    "written without an id column; pass id_column='row' to use it as the id."
                )
            ddf = _number_rows(ddf, "row", compute_scheduler)
            id_column = "row"
        scores = _scores_in_input_order(model, ddf, top_k, id_column, tracking_uri,
                                        compute_scheduler)
        # Ends with out's name, so the writer sees the suffix (".tsv", ".csv.gz").
        tmp = out.with_name(f".tmp-{uuid.uuid4().hex[:12]}.{out.name}")
        # A format may stage part files in the directory `tmp.d` before completing `tmp`.
        staged = tmp.with_name(tmp.name + ".d")
        writes, n_rows, finish = out_format.write_dask(scores, str(tmp), single_file)
        threads = torch_threads_on(client, torch_threads) if client is not None else _null()
        try:
            with threads:
                *_, total = dask.compute(*writes, n_rows, scheduler=compute_scheduler)
            finish()
            _replace(tmp, out)
        finally:
            for path in {staged, tmp}:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists():
                    path.unlink()
    _logger.info("Scored %d records from %s into %s", int(total), data_path, out)
    return int(np.asarray(total))


def _scores_in_input_order(model, ddf, top_k, id_column, tracking_uri, scheduler):
    """:func:`score_dask`'s table with its rows in the input's order, as a file is written.

    A model with a series column is scored series by series, which moves
    rows between partitions: they are numbered first (``id_column`` is
    ``"row"``, or a hidden column beside it) and sorted back.
    """
    _check_id_column(ddf, id_column)
    scorer = _scorer_for(model, top_k, tracking_uri)
    if scorer.series_column is None:
        return _score_with(scorer, ddf, id_column)
    if id_column == "row":  # the row numbers are the order
        return _score_with(scorer, ddf, id_column).sort_values("row")
    ddf = _number_rows(ddf, _ROW, scheduler)
    scores = _score_with(scorer, ddf, [id_column, _ROW])
    return scores.sort_values(_ROW).drop(columns=_ROW)


# ---------------------------------------------------------------- schedulers
@contextlib.contextmanager
def _null():
    yield


@contextlib.contextmanager
def _scheduler_context(scheduler):
    """``(scheduler for dask.compute, distributed client or None)`` for one call."""
    if isinstance(scheduler, str) and scheduler in _LOCAL_SCHEDULERS:
        yield scheduler, None
        return
    from distributed import Client, get_client

    if isinstance(scheduler, Client):
        yield scheduler, scheduler
        return
    if isinstance(scheduler, str):
        _logger.info("Connecting to the Dask scheduler at %s", scheduler)
        with Client(scheduler, set_as_default=False) as client:
            yield client, client
        return
    if scheduler is None:
        try:
            client = get_client()
        except ValueError:
            yield None, None
            return
        yield client, client
        return
    raise TypeError(
        f"scheduler={scheduler!r} must be an address such as 'tcp://host:8786', a "
        f"distributed.Client, one of {_LOCAL_SCHEDULERS}, or None."
    )
