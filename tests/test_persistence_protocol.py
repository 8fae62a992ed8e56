"""The saved-state protocol behind aepipe.save/load (format 3): every class, pipelines, no pickle."""

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.numpy
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

import aepipe
from aepipe import Autoencoder, Denoiser, DenoisingAutoencoder, PCADetector
from aepipe._persistence import ARRAYS
from aepipe._saved_state import SavedStateMixin, saved_state_class
from aepipe.exceptions import ModelFileError

FAST = dict(max_epochs=2, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(60, 4))


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"amount": rng.lognormal(size=80), "rate": rng.normal(size=80),
                          "shop": rng.choice(["a", "b", "c"], size=80),
                          "channel": rng.choice(["web", "store"], size=80)})
    frame.loc[[3, 17], "rate"] = np.nan
    return frame


def _round_trip(obj, tmp_path):
    return aepipe.load(aepipe.save(obj, tmp_path / "model.aepipe"))


# ---------------------------------------------------------------- the protocol
def test_every_public_detector_implements_the_protocol():
    from aepipe.estimators import BaseDetector
    from aepipe.retrieval import CodeIndex
    from aepipe.sensor import BaseWindowedDetector

    public = [getattr(aepipe, name) for name in aepipe.__all__
              if isinstance(getattr(aepipe, name), type)]
    for cls in [*public, CodeIndex]:
        if issubclass(cls, (BaseDetector, BaseWindowedDetector, Denoiser, CodeIndex)):
            assert issubclass(cls, SavedStateMixin), cls
            assert saved_state_class(cls.__name__) is cls, cls
    assert saved_state_class("BaseDetector") is None  # abstract bases are never built
    assert saved_state_class("Pipeline") is None


def test_a_new_autoencoder_variant_needs_nothing_to_be_saved(X, tmp_path):
    class LeakyAutoencoder(Autoencoder):
        """A variant as a contributor would add it: a subclass, nothing in persistence."""

    model = LeakyAutoencoder(activation="leaky_relu", **FAST).fit(X)
    loaded = _round_trip(model, tmp_path)
    assert type(loaded) is LeakyAutoencoder
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))


def test_the_state_is_json_and_named_arrays(X):
    config, arrays = Autoencoder(**FAST).fit(X)._get_saved_state()
    json.dumps(config, allow_nan=False)
    assert {"params", "attributes", "nets"} <= set(config)
    assert all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in arrays.values())
    assert any(name.startswith("net0.") for name in arrays)


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("make", [
    lambda: PCADetector(n_components=2),
    lambda: PCADetector(statistic="t2", svd_solver="full"),
    lambda: PCADetector(n_components=2, handle_missing="mask"),
], ids=["reconstruction", "t2", "mask"])
def test_pca_detector_round_trip_is_exact(make, X, tmp_path):
    data = X.copy()
    data[2, 1] = np.nan if make().handle_missing == "mask" else data[2, 1]
    model = make().fit(data)
    loaded = _round_trip(model, tmp_path)
    assert loaded.get_params() == model.get_params()
    for method in ("score_samples", "transform", "predict"):
        np.testing.assert_array_equal(getattr(loaded, method)(data), getattr(model, method)(data))
    pd.testing.assert_frame_equal(loaded.feature_scores(data), model.feature_scores(data))


def test_pca_detector_on_a_mixed_table_round_trips(table, tmp_path):
    frame = table.fillna(0.0)
    model = PCADetector(n_components=2).fit(frame)
    loaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.score_samples(frame), model.score_samples(frame))
    pd.testing.assert_frame_equal(loaded.reconstruct(frame), model.reconstruct(frame))


def test_denoiser_round_trip_is_exact(X, tmp_path):
    model = Denoiser(DenoisingAutoencoder(**FAST)).fit(X)
    loaded = _round_trip(model, tmp_path)
    assert isinstance(loaded.estimator, DenoisingAutoencoder)  # the unfitted template
    assert loaded.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    assert len(loaded.estimator_.net_.history) == len(model.estimator_.net_.history)


@pytest.mark.parametrize("steps", [
    lambda: [("scale", StandardScaler()), ("ae", Autoencoder(**FAST))],
    lambda: [("scale", MinMaxScaler()), ("denoise", Denoiser(Autoencoder(**FAST))),
             ("pca", PCADetector(n_components=2))],
    lambda: [("impute", SimpleImputer()), ("pca", PCADetector(n_components=2))],
], ids=["scaler-autoencoder", "denoiser-pca", "imputer-pca"])
def test_pipeline_round_trip_is_exact(steps, X, tmp_path):
    pipe = Pipeline(steps())
    data = X.copy()
    if isinstance(pipe[0], SimpleImputer):
        data[5, 2] = np.nan
    pipe.fit(data)
    loaded = _round_trip(pipe, tmp_path)
    assert [name for name, _ in loaded.steps] == [name for name, _ in pipe.steps]
    assert [type(s) for _, s in loaded.steps] == [type(s) for _, s in pipe.steps]
    np.testing.assert_array_equal(loaded.score_samples(data), pipe.score_samples(data))
    np.testing.assert_array_equal(loaded.predict(data), pipe.predict(data))


def test_pipeline_with_a_column_transformer_round_trips(table, tmp_path):
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler())])
    columns = ColumnTransformer([
        ("num", numeric, ["amount", "rate"]),
        ("shop", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["shop"]),
        ("channel", OrdinalEncoder(), ["channel"]),
    ])
    pipe = Pipeline([("columns", columns), ("ae", Autoencoder(**FAST))]).fit(table)
    loaded = _round_trip(pipe, tmp_path)
    np.testing.assert_array_equal(loaded.score_samples(table), pipe.score_samples(table))
    np.testing.assert_array_equal(loaded[:-1].transform(table), pipe[:-1].transform(table))


def test_sklearn_steps_are_saved_as_parameters_and_arrays(X, tmp_path):
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCADetector())]).fit(X)
    path = aepipe.save(pipe, tmp_path / "m.aepipe")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [ARRAYS, "config.json"]
        config = json.loads(archive.read("config.json"))
        arrays = safetensors.numpy.load(archive.read(ARRAYS))
    name, params, attributes = config["model"]["__pipeline__"]["steps"][0][1]["__object__"]
    assert name == "StandardScaler" and params["with_mean"] is True
    np.testing.assert_array_equal(arrays[attributes["mean_"]["__array__"]], pipe[0].mean_)


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("step, name, message", [
    (FunctionTransformer(np.log1p), "f",
     r"step 'f' \(FunctionTransformer\) cannot be saved: .*func' holds a ufunc"),
    (ColumnTransformer([("f", FunctionTransformer(np.log1p), [0])], remainder="passthrough"),
     "cols", r"step 'cols' \(ColumnTransformer\) cannot be saved: .*func' holds a ufunc"),
], ids=["function", "function-in-columns"])
def test_unsupported_steps_are_refused_by_name(step, name, message, X, tmp_path):
    pipe = Pipeline([(name, step), ("pca", PCADetector())]).fit(np.abs(X))
    with pytest.raises(TypeError, match=message):
        aepipe.save(pipe, tmp_path / "m.aepipe")
    assert not list(tmp_path.iterdir())


def test_an_unsupported_final_step_names_what_is_supported(X, tmp_path):
    from sklearn.ensemble import IsolationForest

    pipe = Pipeline([("scale", StandardScaler()),
                     ("forest", IsolationForest(n_estimators=2, random_state=0))]).fit(X)
    with pytest.raises(TypeError, match="step 'forest' is a IsolationForest.*Supported steps: "
                                        "aepipe's detectors.*StandardScaler"):
        aepipe.save(pipe, tmp_path / "m.aepipe")


def _resave(path, edit):
    """Rewrite a format-3 file after ``edit(config, arrays)``, re-hashed and re-signed."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        arrays = dict(safetensors.numpy.load(archive.read(ARRAYS)))
    edit(config, arrays)
    data = safetensors.numpy.save(arrays)
    config["members"][ARRAYS] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    config_bytes = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        archive.comment = b"aepipe-config-sha256:" + hashlib.sha256(config_bytes).hexdigest().encode()
        archive.writestr("config.json", config_bytes)
        archive.writestr(ARRAYS, data)


def test_a_crafted_step_names_only_listed_classes_and_holds_no_code(X, tmp_path):
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCADetector())]).fit(X)
    path = aepipe.save(pipe, tmp_path / "m.aepipe")

    def edit(config, arrays):
        config["model"]["__pipeline__"]["steps"][0][1]["__object__"][0] = "FunctionTransformer"
        config["model"]["__pipeline__"]["steps"][0][1]["__object__"][1] = {"func": "os.system"}

    _resave(path, edit)
    step = aepipe.load(path)[0]  # a file holds values, never code: the "function" is a string
    assert step.func == "os.system"
    with pytest.raises(TypeError, match="not callable"):
        step.transform(X)

    def edit_class(config, arrays):
        config["model"]["__pipeline__"]["steps"][0][1]["__object__"][0] = "IsolationForest"

    _resave(path, edit_class)
    with pytest.raises(ModelFileError, match="names the class 'IsolationForest'"):
        aepipe.load(path)


def test_a_crafted_nested_class_must_implement_the_protocol(X, tmp_path):
    path = aepipe.save(Denoiser(PCADetector()).fit(X), tmp_path / "m.aepipe")

    def edit(config, arrays):
        config["model"]["__saved__"][1]["attributes"]["estimator_"]["__saved__"][0] = "Popen"

    _resave(path, edit)
    with pytest.raises(ModelFileError, match="names the class 'Popen'"):
        aepipe.load(path)


# ---------------------------------------------------------------- no pickle
def _forbid_unpickling(monkeypatch):
    import joblib
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("aepipe.load unpickled something")

    for module, name in [(pickle, "loads"), (pickle, "load"), (pickle, "Unpickler"),
                         (torch, "load"), (joblib, "load")]:
        monkeypatch.setattr(module, name, refuse)


def test_loading_a_format_3_file_unpickles_nothing(table, tmp_path, monkeypatch):
    columns = ColumnTransformer([
        ("num", SimpleImputer(), ["amount", "rate"]),
        ("cat", OneHotEncoder(sparse_output=False), ["shop", "channel"]),
    ])
    pipe = Pipeline([("columns", columns), ("scale", StandardScaler()),
                     ("denoise", Denoiser(Autoencoder(**FAST))),
                     ("detector", aepipe.make_default_detector(n_estimators=2, training_steps=10,
                                                               random_state=0))]).fit(table)
    path = aepipe.save(pipe, tmp_path / "m.aepipe")
    expected = pipe.score_samples(table)
    _forbid_unpickling(monkeypatch)
    loaded = aepipe.load(path)
    np.testing.assert_array_equal(loaded.score_samples(table), expected)


def test_a_windowed_detector_loads_without_unpickling(tmp_path, monkeypatch):
    from aepipe.sensor import WindowedDenoisingAutoencoder

    rng = np.random.default_rng(0)
    stream = pd.DataFrame(np.sin(np.arange(150)[:, None] / [4.0, 9.0])
                          + 0.1 * rng.normal(size=(150, 2)), columns=["a", "b"])
    model = WindowedDenoisingAutoencoder(width=4, max_epochs=1, random_state=0).fit(stream)
    path = aepipe.save(model, tmp_path / "m.aepipe")
    _forbid_unpickling(monkeypatch)
    loaded = aepipe.load(path)
    np.testing.assert_array_equal(loaded.score_samples(stream), model.score_samples(stream))
    pd.testing.assert_frame_equal(loaded.reconstruct(stream), model.reconstruct(stream))


# ---------------------------------------------------------------- older files
def test_a_version_2_file_still_loads_through_the_legacy_reader():
    fixture = Path(__file__).parent / "data" / "frozen" / "autoencoder.aepipe"
    with zipfile.ZipFile(fixture) as archive:
        assert json.loads(archive.read("config.json"))["format_version"] == 2
        assert "weights.pt" in archive.namelist()
    assert isinstance(aepipe.load(fixture), Autoencoder)


def test_a_loaded_old_file_saves_in_the_new_format(tmp_path):
    with pytest.warns(UserWarning, match="format version 1"):
        old = aepipe.load(Path(__file__).parent / "data" / "denoiser-v0.1.0.aepipe")
    path = aepipe.save(old, tmp_path / "m.aepipe")
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("config.json"))["format_version"] == 3
    assert type(aepipe.load(path)) is type(old)


# ---------------------------------------------------------------- MLflow models
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    pytest.importorskip("mlflow")
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder}/mlflow.db", folder


def _log(store, log):
    """``log()`` in a run of ``store``; MLflow's global tracking URI is left as it was."""
    import mlflow

    from aepipe.tracking._uri import using_tracking_uri

    uri, folder = store
    with pytest.MonkeyPatch.context() as patch, using_tracking_uri(uri):
        patch.chdir(folder)  # MLflow puts artifacts in ./mlruns
        with mlflow.start_run():
            return log()


def test_a_logged_model_stores_no_pickle_and_loads_without_unpickling(store, table,
                                                                        monkeypatch):
    import cloudpickle
    import mlflow

    from aepipe.scoring import score_frame
    from aepipe.tracking import AnomalyModel, load_model, log_model
    from aepipe.tracking._uri import using_tracking_uri

    columns = ColumnTransformer([
        ("num", SimpleImputer(), ["amount", "rate"]),
        ("cat", OneHotEncoder(sparse_output=False), ["shop", "channel"]),
    ])
    pipe = Pipeline([("columns", columns), ("pca", PCADetector(n_components=2))]).fit(table)
    uri = _log(store, lambda: log_model(pipe, table))
    with using_tracking_uri(store[0]):
        local = mlflow.artifacts.download_artifacts(uri)
    files = {p.name for p in Path(local).rglob("*") if p.is_file()}
    assert {"pipeline.aepipe", "settings.json"} <= files
    assert not [name for name in files if name.endswith((".pkl", ".joblib", ".pickle"))]
    _forbid_unpickling(monkeypatch)
    for module in (cloudpickle,):
        monkeypatch.setattr(module, "load", pickle.load)
        monkeypatch.setattr(module, "loads", pickle.loads)
    model = load_model(uri, tracking_uri=store[0])
    assert isinstance(model.unwrap_python_model(), AnomalyModel)
    pd.testing.assert_frame_equal(model.predict(table.head(4)),
                                  score_frame(pipe, table.head(4)), check_dtype=False)


def test_an_older_joblib_model_still_loads_with_a_warning(store, X, tmp_path):
    import joblib
    import mlflow

    from aepipe.tracking import AnomalyModel, load_model

    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    detector = PCADetector(n_components=2).fit(frame)
    joblib.dump(detector, tmp_path / "pipeline.joblib")

    def log_as_before():  # what aepipe.tracking.log_model wrote before format 3
        return mlflow.pyfunc.log_model(
            name="model", python_model=AnomalyModel(columns=list(frame.columns)),
            artifacts={"pipeline": str(tmp_path / "pipeline.joblib")}).model_uri

    uri = _log(store, log_as_before)
    with pytest.warns(UserWarning, match="joblib pickle.*unpickles"):
        model = load_model(uri, tracking_uri=store[0])
    np.testing.assert_allclose(model.predict(frame.head(3))["anomaly_score"],
                               detector.anomaly_score(frame.head(3)))


def test_a_per_series_detector_round_trips(tmp_path):
    from aepipe.sensor import PerSeriesDetector, WindowedPCA

    rng = np.random.default_rng(0)
    fleet = pd.DataFrame({"pump": np.repeat([3, 7], 60), "a": rng.normal(size=120),
                          "b": rng.normal(size=120)})
    model = PerSeriesDetector(WindowedPCA(width=4), series_column="pump").fit(fleet)
    loaded = _round_trip(model, tmp_path)
    assert list(loaded.detectors_) == [3, 7]  # integer series keys stay integers
    np.testing.assert_array_equal(loaded.score_samples(fleet), model.score_samples(fleet))


def test_any_detectors_fitted_threshold_is_saved_with_it(X, tmp_path):
    if "threshold" not in PCADetector().get_params():
        pytest.skip("tabular detectors take no threshold= here")
    model = PCADetector(n_components=2, threshold="pot").fit(X)
    loaded = _round_trip(model, tmp_path)
    assert type(loaded.threshold_object_) is type(model.threshold_object_)
    assert loaded.threshold_ == model.threshold_
    np.testing.assert_array_equal(loaded.threshold_object_._peaks, model.threshold_object_._peaks)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
