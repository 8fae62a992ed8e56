"""The servable retrieval model: a fitted CodeIndex that MLflow can load and serve."""

from __future__ import annotations

import pandas as pd

from ..exceptions import ModelFileError
from ..retrieval import neighbors_frame
from ._model import (
    AnomalyModel,
    InvalidModelInputError,
    _input_frame,
    _load_pipeline,
    _requirements,
    log_pyfunc,
    model_signature,
)
from ._uri import _first_line

INDEX_ARTIFACT = "index"  # the artifact of models logged as a pickled PythonModel


class NeighborsModel(AnomalyModel):
    """MLflow pyfunc model answering "the indexed records nearest to each query".

    ``predict(context, df, params={"n_neighbors": k})`` validates ``df``
    against the encoder's input columns (as :class:`AnomalyModel` does),
    encodes it and returns one row per query:
    ``neighbor1_id, neighbor1_distance, neighbor2_id, ...`` (see
    :func:`aepipe.retrieval.neighbors_frame`).

    Parameters
    ----------
    index : fitted CodeIndex or None, default=None
        When None (as logged by :func:`log_index`), read from the ``index``
        artifact in ``load_context``: aepipe's safe model format when the
        encoder can be saved in it (nothing is unpickled), else joblib
        (unpickled with a warning: trusted models only).
    columns, numeric_columns, feature_names
        As in :class:`AnomalyModel`.
    n_neighbors : int, default=10
        Neighbours per query when the request does not say.
    """

    def __init__(self, index=None, *, columns, numeric_columns=None, feature_names=True,
                 n_neighbors=10):
        super().__init__(index, columns=columns, numeric_columns=numeric_columns,
                         feature_names=feature_names, top_k=0)
        self.n_neighbors = n_neighbors

    @property
    def index(self):
        """The fitted :class:`~aepipe.retrieval.CodeIndex`."""
        return self.pipeline

    _kind = "neighbors"
    _file_stem = "index"

    def load_context(self, context):
        # Models logged by older aepipe versions: a pickled NeighborsModel and its artifact.
        path = context.artifacts.get(INDEX_ARTIFACT) if context is not None else None
        if path is None:
            return
        self.pipeline = _load_index(path)

    def _settings(self) -> dict:
        return {"columns": self.columns, "numeric_columns": self.numeric_columns,
                "feature_names": bool(self.feature_names),
                "n_neighbors": int(self.n_neighbors)}

    def predict(self, context, model_input: pd.DataFrame, params=None):
        """Nearest indexed records of each query row; ``params={"n_neighbors": k}``."""
        if self.pipeline is None:
            raise ModelFileError("NeighborsModel has no index; load it with load_model().")
        n_neighbors = (params or {}).get("n_neighbors", self.n_neighbors)
        try:
            n_neighbors = int(n_neighbors)
        except (TypeError, ValueError):
            raise InvalidModelInputError(
                f"n_neighbors={n_neighbors!r} must be an integer.") from None
        X = self.validate(model_input)
        try:
            distances, ids = self.pipeline.kneighbors(X, n_neighbors=n_neighbors)
        except ValueError as exc:  # DataValidationError, a bad n_neighbors, sklearn's errors
            raise InvalidModelInputError(_first_line(exc)) from exc
        index = model_input.index if isinstance(model_input, pd.DataFrame) else None
        return neighbors_frame(distances, ids, index=index)


def _load_index(path):
    """The index artifact: an aepipe model file, or (older models) a joblib pickle."""
    return _load_pipeline(path)


def _faiss_requirement() -> str:
    from importlib import metadata

    try:
        return f"faiss-cpu=={metadata.version('faiss-cpu')}"
    except metadata.PackageNotFoundError:
        return "faiss-cpu"


def build_neighbors_model(index, X_example, *, n_neighbors=10):
    """The (index-free) NeighborsModel for ``index`` and an input frame of ``X_example``."""
    encoder = index.encoder if index.encoder is not None else index
    frame, feature_names = _input_frame(encoder, X_example)
    numeric = [str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    model = NeighborsModel(columns=list(frame.columns), numeric_columns=numeric,
                           feature_names=feature_names, n_neighbors=n_neighbors)
    return model, frame


def log_index(index, X_example, *, name: str = "neighbors",
              registered_model_name: str | None = None, n_neighbors: int = 10) -> str:
    """Log a fitted CodeIndex as a servable pyfunc model in the active run.

    The index is stored in aepipe's safe format (:func:`aepipe.save`) when its
    encoder can be (any aepipe detector, a Pipeline of supported steps, or no
    encoder), else with joblib, with a warning (loading it then unpickles:
    trusted models only). The model
    carries a signature with an ``n_neighbors`` parameter, so a request may
    ask for another number of neighbours.

    Parameters
    ----------
    index : fitted aepipe.retrieval.CodeIndex
    X_example : DataFrame or array-like of shape (n_samples, n_features)
        Records like the indexed ones (a few rows suffice).
    name : str, default="neighbors"
    registered_model_name : str or None, default=None
    n_neighbors : int, default=10
        Neighbours per query when a request does not say.

    Returns
    -------
    model_uri : str
        Loadable with :func:`load_model`; ``.predict(df, params={"n_neighbors": 5})``.

    Examples
    --------
    >>> import mlflow                                                  # doctest: +SKIP
    >>> with mlflow.start_run():                                       # doctest: +SKIP
    ...     uri = log_index(CodeIndex(ae).fit(X), X)                   # doctest: +SKIP
    >>> load_model(uri).predict(X[:3], params={"n_neighbors": 5})      # doctest: +SKIP
    """
    pyfunc, frame = build_neighbors_model(index, X_example, n_neighbors=n_neighbors)
    example = frame.head(5)
    k = min(int(n_neighbors), index.n_indexed_)
    distances, ids = index.kneighbors(example if pyfunc.feature_names else example.to_numpy(),
                                      n_neighbors=k)
    signature = model_signature(example, neighbors_frame(distances, ids),
                                params={"n_neighbors": int(n_neighbors)})
    info = log_pyfunc(pyfunc, index, name=name, signature=signature, input_example=example,
                      registered_model_name=registered_model_name,
                      pip_requirements=[*_requirements(), _faiss_requirement()])
    return info.model_uri
