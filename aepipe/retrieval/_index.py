"""Retrieval by code distance: index records by their autoencoder codes, find the nearest.

An autoencoder compresses a record into a code; records that the model sees
as alike get close codes. :class:`CodeIndex` encodes a library of records
once with a fitted model's ``transform``, keeps the codes, and answers "the
k records most like this one" by encoding the query and searching the codes.

Exact search is scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`.
Approximate search, for large libraries, is a hierarchical navigable
small-world graph (HNSW, Malkov and Yashunin 2018) from FAISS (the
``faiss-cpu`` package, ``pip install 'aepipe[retrieval]'``). Why FAISS
rather than hnswlib or pynndescent:

- maintenance: FAISS is developed by Meta's FAIR team and released several
  times a year (1.15 in 2026); hnswlib's last release dates from December
  2023; pynndescent is maintained but is one person's project;
- wheels: ``faiss-cpu`` ships binary wheels for Linux, macOS and Windows on
  every supported Python, so nothing is compiled on install; hnswlib is
  built from source on many platforms, and pynndescent pulls in numba and
  LLVM (hundreds of MB) and compiles its search at first use;
- speed and recall: on 32-dimensional clustered codes, one (shared)
  thread, FAISS's HNSW (32 links, build depth 100, search depth 64)
  answered about 4,900 queries/s at 100,000 codes and 1,600/s at 1,000,000,
  both at a recall@10 of 0.996 or more, against 840/s and 60-90/s for exact
  search (``pipelines/benchmark_retrieval.py``); the same graph algorithm
  as hnswlib, with more index types (IVF, product quantisation) behind the
  same API should a library outgrow memory.
"""

from __future__ import annotations

import logging
import threading
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._compat import HasMethods, Interval, StrOptions, _fit_context
from .._saved_state import SavedStateMixin

logger = logging.getLogger(__name__)

# method="auto" searches exactly up to this many indexed records. Measured
# (one thread, 32-dimensional codes, pipelines/benchmark_retrieval.py): exact
# search answers about 700-850 queries/s at 100k records (linear in the
# records: several thousand at 10k), while an HNSW graph takes about 40 s to
# build per 100k records; below 50k the build is not won back by faster
# queries unless a library is queried for long.
EXACT_MAX_RECORDS = 50_000
_METRICS = ("euclidean", "cosine")


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "method='hnsw' needs FAISS: pip install 'aepipe[retrieval]' (or faiss-cpu). "
            "method='exact' needs nothing more."
        ) from error
    return faiss


def _final_step(encoder):
    return encoder[-1] if hasattr(encoder, "steps") else encoder


class CodeIndex(SavedStateMixin, BaseEstimator):
    """Nearest-neighbour search over the codes of a fitted autoencoder.

    ``fit(X, ids)`` encodes the library ``X`` with ``encoder.transform`` and
    indexes the codes; ``kneighbors(Q)`` encodes the queries and returns the
    distances and ids of the closest indexed records. Only the codes and ids
    are kept, not the records.

    Parameters
    ----------
    encoder : fitted estimator with ``transform``, or None
        Any fitted aepipe autoencoder (or a ``Pipeline`` ending in one),
        :class:`~aepipe.AutoencoderEnsemble` (all members' codes side by
        side, or one member's, see ``member``), or
        :class:`~aepipe.PCADetector` for comparison. ``None`` indexes the
        columns of ``X`` as they are (codes computed elsewhere, or the raw
        columns as a baseline).
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"``: one minus the cosine similarity of the codes (codes are
        scaled to unit length; a zero code is at distance 1 from every code).
    method : {"auto", "exact", "hnsw"}, default="auto"
        ``"exact"``: scikit-learn's ``NearestNeighbors``. ``"hnsw"``: an
        approximate FAISS HNSW graph (needs ``faiss-cpu``). ``"auto"``: exact
        up to 50,000 indexed records, HNSW beyond when FAISS is installed
        (exact otherwise, with a log message).
    member : int or None, default=None
        With an :class:`~aepipe.AutoencoderEnsemble` encoder, index only this
        member's code (0-based); None uses every member's code.
    hnsw_m : int, default=32
        Links per node of the HNSW graph (more: better recall, more memory).
    ef_construction : int, default=100
        Search depth while building the graph. Measured on 1,000,000
        clustered codes: 40 builds in two thirds of the time but finds 0.961
        of the true 10 nearest, 100 finds 0.996, at the same query speed.
    ef_search : int, default=64
        Search depth of a query (more: better recall, slower); raised to
        ``n_neighbors`` when that is larger.
    n_jobs : int or None, default=None
        Threads for building and searching (None: the libraries' default;
        with more than one, the HNSW graph may differ between builds).

    Attributes
    ----------
    codes_ : ndarray of shape (n_indexed, n_codes), float32
        The indexed codes (unit length for ``metric="cosine"``).
    ids_ : ndarray of shape (n_indexed,)
        The ids passed to ``fit`` (default: positions 0 .. n_indexed - 1).
    method_ : {"exact", "hnsw"}
        The search used.
    n_indexed_ : int

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : the exact search.

    Notes
    -----
    ``aepipe.save(index, path)`` writes the encoder (in aepipe's safe
    format), the codes and the ids; ``aepipe.load`` rebuilds the search
    structure from the codes on first use (an HNSW graph of 1,000,000
    32-value codes took 12 minutes to build on one shared thread; pass
    ``n_jobs`` to use more), never unpickling or deserialising a stored
    graph.

    References
    ----------
    Malkov, Y. A., Yashunin, D. A. (2018). Efficient and robust approximate
    nearest neighbor search using hierarchical navigable small world graphs.
    IEEE TPAMI 42(4).
    Douze, M. et al. (2024). The Faiss library. arXiv:2401.08281.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import Autoencoder
    >>> from aepipe.retrieval import CodeIndex
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 6))
    >>> ae = Autoencoder(max_epochs=5, random_state=0).fit(X)
    >>> index = CodeIndex(ae).fit(X, ids=[f"rec{i}" for i in range(300)])
    >>> distances, ids = index.kneighbors(X[:2], n_neighbors=3)
    >>> ids[:, 0].tolist()
    ['rec0', 'rec1']
    >>> distances.shape
    (2, 3)
    """

    _parameter_constraints: dict = {
        "encoder": [HasMethods(["transform"]), None],
        "metric": [StrOptions(set(_METRICS))],
        "method": [StrOptions({"auto", "exact", "hnsw"})],
        "member": [Interval(Integral, 0, None, closed="left"), None],
        "hnsw_m": [Interval(Integral, 2, None, closed="left")],
        "ef_construction": [Interval(Integral, 1, None, closed="left")],
        "ef_search": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, encoder=None, *, metric="euclidean", method="auto", member=None,
                 hnsw_m=32, ef_construction=100, ef_search=64, n_jobs=None):
        self.encoder = encoder
        self.metric = metric
        self.method = method
        self.member = member
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.n_jobs = n_jobs

    # ------------------------------------------------------------ codes
    def encode(self, X: ArrayLike) -> np.ndarray:
        """The codes the index compares for records X (float32, unit length for cosine).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        codes : ndarray of shape (n_samples, n_codes)
        """
        if self.encoder is None:
            from sklearn.utils.validation import check_array

            codes = check_array(X, dtype=[np.float64, np.float32])
        else:
            check_is_fitted(_final_step(self.encoder))
            codes = np.asarray(self.encoder.transform(X), dtype=np.float64)
            codes = self._member_codes(codes)
        codes = np.ascontiguousarray(codes, dtype=np.float32)
        if self.metric == "cosine":
            norms = np.linalg.norm(codes, axis=1, keepdims=True)
            codes = codes / np.where(norms > 0, norms, 1.0)
        return codes

    def _member_codes(self, codes: np.ndarray) -> np.ndarray:
        if self.member is None:
            return codes
        final = _final_step(self.encoder)
        dims = getattr(final, "latent_dims_", None)
        if dims is None:
            raise ValueError(
                f"member={self.member} selects one member of an AutoencoderEnsemble, but the "
                f"encoder is a {type(final).__name__}; leave member=None."
            )
        if self.member >= len(dims):
            raise ValueError(
                f"member={self.member} is out of range: the ensemble has {len(dims)} members "
                f"(0 to {len(dims) - 1})."
            )
        bounds = np.cumsum((0, *dims))
        return codes[:, bounds[self.member]:bounds[self.member + 1]]

    # ------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y=None, *, ids: ArrayLike | None = None):
        """Encode the library X and index its codes.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The records to search among.
        y : None
            Not used; the records' ids go in ``ids`` (a ``y`` is refused, so
            ``fit(X, keys)`` cannot drop the keys without a word).
        ids : array-like of shape (n_samples,) or None, default=None
            What ``kneighbors`` returns for each record (integers or
            strings, e.g. a primary key); None uses the positions 0 .. n-1.

        Returns
        -------
        self : object
        """
        if y is not None:
            raise ValueError("CodeIndex.fit takes the records' ids as ids=...; it uses no y. "
                             "Call fit(X, ids=keys).")
        codes = self.encode(X)
        if len(codes) == 0:
            raise ValueError("X has no records to index; pass at least one.")
        self.ids_ = _check_ids(ids, len(codes))
        self._set_codes(codes)
        return self

    def _set_codes(self, codes: np.ndarray) -> None:
        """Store the codes, resolve ``method_`` and build the search structure."""
        self.codes_ = np.ascontiguousarray(codes, dtype=np.float32)
        self.n_indexed_ = len(codes)
        self.method_ = self._resolve_method(len(codes))
        self._lock = threading.Lock()
        self._searcher = None
        self._searcher_for()

    def _restore(self, codes: np.ndarray, ids: np.ndarray, method: str) -> None:
        """The fitted state read by :func:`aepipe.load`; the search is built on first use."""
        if method not in ("exact", "hnsw"):
            raise ValueError(f"method_={method!r} is not 'exact' or 'hnsw'")
        if method == "hnsw":
            try:
                _faiss()
            except ImportError:
                logger.warning("The index was saved with HNSW search, but faiss-cpu is not "
                               "installed here: searching exactly (pip install "
                               "'aepipe[retrieval]' for the approximate search).")
                method = "exact"
        self.codes_, self.ids_ = codes, ids
        self.n_indexed_, self.method_ = len(codes), method
        self._lock, self._searcher = threading.Lock(), None

    def _resolve_method(self, n_indexed: int) -> str:
        if self.method != "auto":
            if self.method == "hnsw":
                _faiss()
            return self.method
        if n_indexed <= EXACT_MAX_RECORDS:
            return "exact"
        try:
            _faiss()
        except ImportError:
            logger.info("%d records: exact search, as faiss-cpu is not installed for the "
                        "approximate one (pip install 'aepipe[retrieval]').", n_indexed)
            return "exact"
        return "hnsw"

    def _searcher_for(self):
        """The search structure, built from ``codes_`` on first use (after ``load``)."""
        if self.__dict__.get("_searcher") is not None:
            return self._searcher
        if self.__dict__.get("_lock") is None:
            self._lock = threading.Lock()
        with self._lock:
            if self.__dict__.get("_searcher") is None:
                self._searcher = self._build()
        return self._searcher

    def _build(self):
        if self.method_ == "exact":
            from sklearn.neighbors import NearestNeighbors

            return NearestNeighbors(n_jobs=self.n_jobs).fit(self.codes_)
        faiss = _faiss()
        index = faiss.IndexHNSWFlat(self.codes_.shape[1], int(self.hnsw_m))
        index.hnsw.efConstruction = int(self.ef_construction)
        with _faiss_threads(faiss, self.n_jobs):
            index.add(self.codes_)
        return index

    # ------------------------------------------------------------ search
    def kneighbors(self, X: ArrayLike | None = None, n_neighbors: int = 10,
                   return_distance: bool = True):
        """The indexed records closest to each record of X in code space.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_queries, n_features), or None
            Query records (encoded like the library). None: the neighbours of
            each indexed record, the record itself left out.
        n_neighbors : int, default=10
            At most the number of indexed records (one fewer with ``X=None``).
        return_distance : bool, default=True

        Returns
        -------
        distances : ndarray of shape (n_queries, n_neighbors), float64
            Increasing along each row (only with ``return_distance=True``).
        ids : ndarray of shape (n_queries, n_neighbors)
            The ``ids`` of the neighbours, nearest first.
        """
        check_is_fitted(self)
        n_neighbors = self._check_n_neighbors(n_neighbors, exclude_self=X is None)
        if X is None:
            distances, positions = self._search(self.codes_, n_neighbors + 1)
            distances, positions = _drop_self(distances, positions)
        else:
            codes = self.encode(X)
            if codes.shape[1] != self.codes_.shape[1]:
                raise ValueError(
                    f"X gives codes of width {codes.shape[1]}, the index holds codes of width "
                    f"{self.codes_.shape[1]}; query with records like the indexed ones."
                )
            distances, positions = self._search(codes, n_neighbors)
        ids = self.ids_[positions]
        return (distances, ids) if return_distance else ids

    def _check_n_neighbors(self, n_neighbors, *, exclude_self: bool) -> int:
        available = self.n_indexed_ - (1 if exclude_self else 0)
        if (isinstance(n_neighbors, (bool, np.bool_)) or not isinstance(n_neighbors, Integral)
                or not 1 <= n_neighbors <= available):
            raise ValueError(
                f"n_neighbors={n_neighbors!r} must be an integer from 1 to {available} (the "
                f"index holds {self.n_indexed_} records"
                + (", less the record itself)." if exclude_self else ").")
            )
        return int(n_neighbors)

    def _search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        searcher = self._searcher_for()
        if self.method_ == "exact":
            distances, positions = searcher.kneighbors(codes, n_neighbors=k)
            distances = np.asarray(distances, dtype=np.float64)
        else:
            faiss = _faiss()
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(int(self.ef_search), k)
            with _faiss_threads(faiss, self.n_jobs):
                squared, positions = searcher.search(codes, k, params=params)
            missing = positions < 0  # fewer than k reachable: fill exactly
            if missing.any():
                rows = np.flatnonzero(missing.any(axis=1))
                squared[rows], positions[rows] = _exact_rows(self.codes_, codes[rows], k)
            distances = np.sqrt(np.maximum(squared.astype(np.float64), 0.0))
        if self.metric == "cosine":
            distances = distances**2 / 2.0  # unit vectors: |a - b|^2 = 2 (1 - cos)
        return distances, np.asarray(positions, dtype=np.int64)

    # The saved-state protocol (aepipe/_saved_state.py): the encoder is saved fitted, the
    # search structure is rebuilt from the codes on first use.
    _fitted_params = ("encoder",)
    _unsaved_attributes = ("_lock", "_searcher")

    @classmethod
    def _from_saved_state(cls, config, arrays, *, device=None):
        index = super()._from_saved_state(config, arrays, device=device)
        codes, ids = index.codes_, index.ids_
        if (codes.ndim != 2 or codes.dtype != np.float32 or ids.shape != (len(codes),)
                or ids.dtype.kind not in "iU" or index.n_indexed_ != len(codes)):
            raise ValueError(f"codes {codes.shape} {codes.dtype} and ids {ids.shape} "
                             f"{ids.dtype} do not make an index of {index.n_indexed_} records")
        index._restore(codes, ids, index.method_)
        return index

    def __getstate__(self):
        # The search structure is rebuilt from codes_ (a FAISS graph does not pickle).
        state = dict(super().__getstate__())
        state.pop("_searcher", None)
        state.pop("_lock", None)
        return state

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "codes_")


def _check_ids(ids, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    values = np.asarray(ids)
    if values.ndim != 1 or len(values) != n:
        raise ValueError(
            f"ids has shape {values.shape}; pass one id per record of X ({n})."
        )
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind in "U":
        return values
    if values.dtype.kind == "O" and all(isinstance(v, str) for v in values):
        return values.astype(str)
    if values.dtype.kind == "O" and all(
            isinstance(v, Integral) and not isinstance(v, bool) for v in values):
        return values.astype(np.int64)
    raise ValueError(
        f"ids must be integers or strings (got dtype {values.dtype}); convert them, "
        "e.g. ids=df['key'].astype(str)."
    )


def _drop_self(distances: np.ndarray, positions: np.ndarray):
    """Neighbours of indexed records without the record itself (k + 1 columns -> k)."""
    own = positions == np.arange(len(positions))[:, None]  # at most one per row
    own[~own.any(axis=1), -1] = True  # itself not found (ties, approximate): drop the farthest
    k = positions.shape[1] - 1
    return distances[~own].reshape(-1, k), positions[~own].reshape(-1, k)


def _exact_rows(codes: np.ndarray, queries: np.ndarray, k: int):
    from sklearn.neighbors import NearestNeighbors

    distances, positions = NearestNeighbors().fit(codes).kneighbors(queries, n_neighbors=k)
    return distances.astype(np.float32) ** 2, positions


class _faiss_threads:
    """Run FAISS with ``n_jobs`` OpenMP threads, restoring the previous count after."""

    def __init__(self, faiss, n_jobs):
        self.faiss, self.n_jobs = faiss, n_jobs

    def __enter__(self):
        self.previous = self.faiss.omp_get_max_threads()
        if self.n_jobs is not None:
            self.faiss.omp_set_num_threads(int(self.n_jobs))

    def __exit__(self, *exc):
        if self.n_jobs is not None:
            self.faiss.omp_set_num_threads(self.previous)
        return False


def neighbors_frame(distances: np.ndarray, ids: np.ndarray, index=None):
    """``kneighbors``' output as one row per query: ``neighbor1_id``, ``neighbor1_distance``, ...

    The layout of the CLI's ``aepipe neighbors`` output and of the served
    model's replies.
    """
    import pandas as pd

    columns = {}
    for k in range(ids.shape[1]):
        columns[f"neighbor{k + 1}_id"] = ids[:, k]
        columns[f"neighbor{k + 1}_distance"] = distances[:, k]
    return pd.DataFrame(columns, index=index)
