"""The pyfunc model: a fitted aepipe pipeline that MLflow can load and serve.

``mlflow.sklearn`` forwards only ``predict``-like methods to pyfunc and its
default serialisation (skops) refuses custom types, so an aepipe model is a
pyfunc model of its own: a folder holding the fitted pipeline as an
:func:`aepipe.save` model file (``pipeline.aepipe``) and the input settings
as JSON (``settings.json``), read by this module's ``_load_pyfunc`` (MLflow's
``loader_module``) into an :class:`AnomalyModel`. Neither a pickled Python
model (MLflow's ``python_model.pkl``) nor a pickled pipeline is stored, so
loading or serving the model executes no code from the store.

.. warning::
   Models logged by older aepipe versions, and pipelines with steps the safe
   format does not hold (logged with a warning), store a joblib pickle
   (``pipeline.joblib``). Loading such a model unpickles the pipeline, which
   can execute arbitrary code (a warning says so): load and serve only models
   from a tracking store you trust.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from .._version import __version__
from ..exceptions import DataValidationError, ModelFileError, TrackingError
from ..scoring import score_frame
from ._uri import _first_line

logger = logging.getLogger(__name__)

PIPELINE_ARTIFACT = "pipeline"  # the artifact of models logged as a pickled PythonModel
_SETTINGS_FILE = "settings.json"
_LOADER_MODULE = __name__
_SAFE_SUFFIX = ".aepipe"  # aepipe.save's format: nothing unpickled (else a joblib pickle)


class InvalidModelInputError(DataValidationError, MlflowException):
    """Bad input to the served model: a ``DataValidationError`` that MLflow answers with 400."""

    def __init__(self, message):
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


class AnomalyModel(PythonModel):
    """MLflow pyfunc model scoring records with a fitted aepipe detector or pipeline.

    ``predict(context, df)`` validates ``df`` against the training columns and
    returns :func:`aepipe.scoring.score_frame`: ``anomaly_score`` (higher = more
    anomalous), ``predicted_anomaly``, ``top1_column``, ``top1_score``, ...

    Parameters
    ----------
    pipeline : fitted estimator or None, default=None
        When None (as logged by :func:`log_model`), the pipeline is read from
        the ``pipeline`` artifact in ``load_context``: with :func:`aepipe.load`
        (nothing unpickled), or, for an older joblib artifact, unpickled with a
        warning (trusted models only).
    columns : list of str
        Input columns, in training order.
    numeric_columns : list of str or None, default=None
        Columns that must be numeric (default: all).
    feature_names : bool, default=True
        Whether the pipeline was fitted on a DataFrame (else it gets an array).
    top_k : int, default=3

    Notes
    -----
    Column order in the input does not matter (columns are selected by name);
    missing or unexpected columns and non-numeric values in numeric columns
    raise :class:`InvalidModelInputError` naming the column and row.

    Through ``mlflow.pyfunc.load_model`` and ``mlflow models serve``, MLflow's
    own schema enforcement runs first: a missing column or a value that cannot
    be converted to the signature's type is a 400 with MLflow's message; an
    *extra* column is dropped by MLflow before ``predict`` sees the input
    (records are scored on the signature's columns, 200), and JSON booleans in
    numeric columns are converted to 0/1 by MLflow. Boolean columns are typed
    ``Any`` in the signature, so they reach the pipeline as sent and are
    checked as in Python (True/False, 0/1, "true"/"false"; else a 400).
    """

    def __init__(self, pipeline=None, *, columns, numeric_columns=None, feature_names=True,
                 top_k=3):
        self.pipeline = pipeline
        self.columns = [str(c) for c in columns]
        self.numeric_columns = (
            list(self.columns) if numeric_columns is None else [str(c) for c in numeric_columns]
        )
        self.feature_names = feature_names
        self.top_k = top_k

    _kind = "anomaly"
    _file_stem = "pipeline"

    def load_context(self, context):
        # Models logged by older aepipe versions: a pickled AnomalyModel and a joblib artifact.
        path = context.artifacts.get(PIPELINE_ARTIFACT) if context is not None else None
        if path is None:
            return
        self.pipeline = _load_pipeline(path)

    def _settings(self) -> dict:
        """What ``_load_pyfunc`` passes back to the constructor (JSON)."""
        return {"columns": self.columns, "numeric_columns": self.numeric_columns,
                "feature_names": bool(self.feature_names), "top_k": int(self.top_k)}

    def validate(self, model_input) -> pd.DataFrame | np.ndarray:
        """Check ``model_input`` and return what the pipeline expects."""
        if not isinstance(model_input, pd.DataFrame):
            values = np.asarray(model_input, dtype=object)
            if values.ndim != 2 or values.shape[1] != len(self.columns):
                raise InvalidModelInputError(
                    f"Expected a table with columns {self.columns}; got an array of shape "
                    f"{values.shape}. Send a DataFrame (dataframe_split or dataframe_records)."
                )
            model_input = pd.DataFrame(values, columns=self.columns)
        present = [str(c) for c in model_input.columns]
        missing = [c for c in self.columns if c not in present]
        if missing:
            raise InvalidModelInputError(
                f"Missing column(s) {missing}; the model expects columns {self.columns}."
            )
        extra = [c for c in present if c not in self.columns]
        if extra:
            raise InvalidModelInputError(
                f"Unexpected column(s) {extra}; the model expects columns {self.columns}."
            )
        if len(model_input) == 0:
            raise InvalidModelInputError("Got no rows to score; send at least one record.")
        frame = model_input.set_axis(present, axis=1)[self.columns]
        converted = {}
        for column in self.numeric_columns:
            series = frame[column]
            if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
                numbers = pd.to_numeric(series, errors="coerce")
                bad = numbers.isna() & series.notna()
                if pd.api.types.is_bool_dtype(series) or bad.any():
                    row = series.index[bad.to_numpy()][0] if bad.any() else series.index[0]
                    raise InvalidModelInputError(
                        f"Column {column!r} must be numeric; row {row} has {series[row]!r}."
                    )
                converted[column] = numbers.astype(np.float64)
        if converted:
            frame = frame.assign(**converted)
        return frame if self.feature_names else frame.to_numpy()

    def predict(self, context, model_input: pd.DataFrame, params=None):
        """Score ``model_input`` (a DataFrame); see :func:`aepipe.scoring.score_frame`."""
        if self.pipeline is None:
            raise ModelFileError("AnomalyModel has no pipeline; load it with load_model().")
        X = self.validate(model_input)
        index = model_input.index if isinstance(model_input, pd.DataFrame) else None
        try:
            out = score_frame(self.pipeline, X, top_k=self.top_k)
        except ValueError as exc:  # DataValidationError and sklearn's input errors
            raise InvalidModelInputError(_first_line(exc)) from exc
        if index is not None:
            out.index = index
        return out


class _PyfuncModel:
    """What MLflow's pyfunc loader gets from ``_load_pyfunc``: ``predict`` and the model.

    ``PyFuncModel.unwrap_python_model()`` returns ``python_model`` (the
    :class:`AnomalyModel`), as for a logged ``PythonModel``.
    """

    def __init__(self, python_model):
        self.python_model = python_model

    def predict(self, model_input, params=None):
        return self.python_model.predict(None, model_input, params=params)


def _model_classes() -> dict:
    from ._retrieval import NeighborsModel

    return {cls._kind: cls for cls in (AnomalyModel, NeighborsModel)}


def _load_pyfunc(data_path):
    """MLflow's entry point (``loader_module``): the model in ``data_path``, nothing unpickled."""
    folder = Path(data_path)
    try:
        settings = json.loads((folder / _SETTINGS_FILE).read_text())
        kind, file_name = settings.pop("kind"), settings.pop("file")
        cls = _model_classes()[kind]
    except FileNotFoundError:
        raise ModelFileError(f"Model folder {folder} has no {_SETTINGS_FILE}.") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"Model folder {folder} has an invalid {_SETTINGS_FILE} "
                             f"({type(exc).__name__}: {exc}).") from None
    if Path(file_name).name != file_name:
        raise ModelFileError(f"{_SETTINGS_FILE} names {file_name!r}, not a file in {folder}.")
    try:
        model = cls(None, **settings)
    except TypeError as exc:
        raise ModelFileError(f"Model folder {folder} has an invalid {_SETTINGS_FILE} "
                             f"({exc}).") from None
    model.pipeline = _load_pipeline(folder / file_name)
    return _PyfuncModel(model)


def log_pyfunc(python_model, model, *, name, signature, input_example, registered_model_name,
               pip_requirements):
    """Log ``model`` (saved with aepipe.save) and ``python_model``'s settings as a pyfunc model."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="aepipe-model-") as tmp:
        folder = Path(tmp) / "aepipe"
        folder.mkdir()
        path = _save_artifact(model, folder, python_model._file_stem)
        settings = {"kind": python_model._kind, "file": path.name, **python_model._settings()}
        (folder / _SETTINGS_FILE).write_text(json.dumps(settings, indent=1))
        return mlflow.pyfunc.log_model(
            name=name, loader_module=_LOADER_MODULE, data_path=str(folder),
            signature=signature, input_example=input_example,
            registered_model_name=registered_model_name, pip_requirements=pip_requirements,
        )


def _load_pipeline(path):
    """The pipeline artifact: an aepipe model file, or (older models) a joblib pickle."""
    if Path(path).suffix == _SAFE_SUFFIX:
        from .._persistence import load

        return load(path)
    return _unpickle(path)


def _unpickle(path):
    import joblib

    warnings.warn(
        f"Model file {path} is a joblib pickle (logged by an older aepipe, or a pipeline "
        "aepipe's safe format does not hold): loading it unpickles, which can execute "
        "arbitrary code. Load and serve only models from a tracking store you trust; log "
        "the model again with aepipe to store it without pickle.", UserWarning, stacklevel=3)
    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise ModelFileError(f"Model file {path} is missing.") from None
    except Exception as exc:  # truncated/tampered pickles fail in many ways
        raise ModelFileError(
            f"Model file {path} is truncated, corrupted or from an incompatible version "
            f"({type(exc).__name__}: {_first_line(exc)})."
        ) from None


def _input_frame(pipeline, X) -> tuple[pd.DataFrame, bool]:
    """X as a DataFrame with the names the pipeline saw, and whether it saw names."""
    if isinstance(X, pd.DataFrame):
        return X, True
    values = np.asarray(X)
    names = getattr(pipeline, "feature_names_in_", None)
    columns = [str(c) for c in names] if names is not None else [
        f"x{j}" for j in range(values.shape[1])
    ]
    return pd.DataFrame(values, columns=columns), False


def model_signature(example: pd.DataFrame, output, params=None):
    """MLflow's signature of ``example -> output``, with boolean input columns typed ``Any``.

    MLflow's scoring server casts a JSON column declared ``boolean`` with
    ``astype(bool)`` (``mlflow.utils.proto_json_utils.cast_df_types_according_to_schema``)
    before the model sees it: by truthiness, so ``"false"``, ``"no"``, ``2`` and
    ``0.5`` arrive as True and ``null`` and ``""`` as False. A column typed
    ``Any`` reaches the model as sent, and the pipeline checks it as it does in
    Python and in ``aepipe score`` (True/False, 0/1, ``"true"``/``"false"``;
    anything else is a 400 naming the column and value). MLflow cannot type an
    ``Any`` column of a CSV request body: such a model takes JSON bodies only.
    """
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

    signature = infer_signature(example, output, params=params)
    inputs = Schema([
        ColSpec(AnyType(), spec.name, required=spec.required)
        if spec.type == DataType.boolean else spec
        for spec in signature.inputs.inputs
    ])
    return ModelSignature(inputs, signature.outputs, signature.params)


def _requirements() -> list[str]:
    pins = [f"aepipe=={__version__}"]
    for dist in ("mlflow", "torch", "skorch", "scikit-learn", "pandas", "numpy", "joblib",
                 "safetensors"):
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:  # pragma: no cover
            pins.append(dist)
    return pins


def build_model(pipeline, X_example, *, top_k=3) -> tuple[AnomalyModel, pd.DataFrame]:
    """The (unfitted-state-free) AnomalyModel for ``pipeline`` and an input example."""
    frame, feature_names = _input_frame(pipeline, X_example)
    numeric = [str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    model = AnomalyModel(columns=list(frame.columns), numeric_columns=numeric,
                         feature_names=feature_names, top_k=top_k)
    return model, frame


def _example_rows(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The input example: 5 rows (a whole window for windowed detectors), with
    pandas ``category`` columns as plain objects, which MLflow's schema can type."""
    detector = model[-1] if getattr(model, "steps", None) else model
    width = getattr(detector, "width", None)  # windowed (sensor) detectors
    n_rows = max(5, width if isinstance(width, int) else 0)
    example = frame.head(n_rows)
    categorical = [c for c in example.columns if isinstance(example[c].dtype, pd.CategoricalDtype)]
    if categorical:
        example = example.astype({c: object for c in categorical})
    return example


def log_model(model, X_example, *, name: str = "model", registered_model_name: str | None = None,
              top_k: int = 3) -> str:
    """Log a fitted detector/pipeline as a servable pyfunc model in the active run.

    The pipeline is saved with :func:`aepipe.save` as the ``pipeline``
    artifact, so loading or serving the model unpickles nothing. A pipeline
    with a step that format does not hold (see :func:`aepipe.save`) is saved
    with joblib instead, with a warning: loading it then unpickles (trusted
    models only). The model carries a signature (input columns and types,
    boolean columns as ``Any``; output frame) and an input example (first 5 rows).

    Parameters
    ----------
    model : fitted aepipe detector or Pipeline ending in one
    X_example : DataFrame or array-like of shape (n_samples, n_features)
        Data like the training data (a few rows suffice).
    name : str, default="model"
    registered_model_name : str or None, default=None
        Also register the model under this name in the model registry.
    top_k : int, default=3

    Returns
    -------
    model_uri : str
        ``models:/<model_id>`` URI, loadable with :func:`load_model`.
    """
    pyfunc, frame = build_model(model, X_example, top_k=top_k)
    example = _example_rows(model, frame)
    scored = score_frame(model, example if pyfunc.feature_names else example.to_numpy(), top_k)
    signature = model_signature(example, scored)
    info = log_pyfunc(pyfunc, model, name=name, signature=signature, input_example=example,
                      registered_model_name=registered_model_name,
                      pip_requirements=_requirements())
    return info.model_uri


def _save_artifact(model, folder: Path, stem: str) -> Path:
    """``model`` in aepipe's safe format; with joblib (and a warning) when it cannot be."""
    from .._persistence import save

    try:
        return save(model, folder / f"{stem}.aepipe")
    except TypeError as error:
        import joblib

        warnings.warn(
            f"The model is logged as a joblib pickle, which loading executes: {error}",
            UserWarning, stacklevel=4)
        path = folder / f"{stem}.joblib"
        joblib.dump(model, path)
        return path


def load_model(model_uri: str, *, tracking_uri: str | None = None):
    """Load a logged aepipe model; ``.predict(df)`` returns the scoring frame.

    Nothing is unpickled, except from a model whose pipeline artifact is a
    joblib pickle (logged by an older aepipe): that loads with a warning, and
    executes code from the store; load only such models from a store you trust.

    Parameters
    ----------
    model_uri : str
        ``runs:/<run_id>/model``, ``models:/<name>/<version>``, ``models:/<model_id>``
        or a local path.
    tracking_uri : str or None, default=None
        Store to resolve ``runs:/`` and ``models:/`` URIs against (see
        :func:`resolve_tracking_uri`).

    Returns
    -------
    model : mlflow.pyfunc.PyFuncModel

    Raises
    ------
    TrackingError
        The URI does not exist or the store cannot be reached.
    ModelFileError
        The pipeline file inside the model is missing or corrupted.
    """
    import mlflow

    from ._uri import check_reachable, mlflow_errors, resolve_tracking_uri, using_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    # A damaged store (a truncated SQLite file, ...) fails in the store layer: TrackingError.
    with using_tracking_uri(uri), mlflow_errors(f"Loading model {model_uri!r}", uri):
        try:
            return mlflow.pyfunc.load_model(model_uri)
        except ModelFileError:
            raise
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower() \
                    or "does not exist" in str(exc).lower():
                raise TrackingError(
                    f"Model URI {model_uri!r} does not exist in tracking store {uri}."
                ) from None
            raise TrackingError(f"Cannot load model {model_uri!r}: {_first_line(exc)}") from None
        except OSError as exc:
            raise TrackingError(f"Cannot load model {model_uri!r}: {_first_line(exc)}") from None
