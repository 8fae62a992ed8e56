"""aepipe.tracking against a real MLflow SQLite store (no mocks)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from aepipe.estimators import Autoencoder, PCADetector
from aepipe.exceptions import DataValidationError, ModelFileError, TrackingError
from aepipe.scoring import anomaly_average_precision, anomaly_roc_auc, score_frame

mlflow = pytest.importorskip("mlflow")
skorch = pytest.importorskip("skorch")

from aepipe.tracking import (  # noqa: E402
    AnomalyModel,
    TrackedRun,
    flatten_params,
    load_model,
    resolve_tracking_uri,
    serve_command,
    track_fit,
    track_search,
)
from aepipe.tracking._callback import MlflowEpochLogger  # noqa: E402
from aepipe.tracking._model import InvalidModelInputError  # noqa: E402
from aepipe.tracking._serve import free_port  # noqa: E402

COLUMNS = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def labelled(request):
    rng = np.random.default_rng(42)
    basis = rng.normal(size=(2, 6))
    normal = rng.normal(size=(150, 2)) @ basis + 0.05 * rng.normal(size=(150, 6))
    anomalies = rng.normal(size=(10, 2)) @ basis + rng.normal(scale=2.0, size=(10, 6))
    order = rng.permutation(160)
    X = pd.DataFrame(np.vstack([normal, anomalies])[order], columns=COLUMNS)
    y = np.r_[np.zeros(150, dtype=int), np.ones(10, dtype=int)][order]
    return X, y


class _SeesStreamedLoss(skorch.callbacks.Callback):
    """Reads the active run's train_loss history from the store during training."""

    def initialize(self):
        self.seen_ = []
        return self

    def on_epoch_end(self, net, **kwargs):
        run = mlflow.active_run()
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
        self.seen_.append(len(history))


@pytest.fixture(scope="module")
def tracked(labelled, tmp_path_factory):
    """One tracked fit of scaler + Autoencoder, logged and registered."""
    X, y = labelled
    store = tmp_path_factory.mktemp("store")
    probe = _SeesStreamedLoss()
    pipe = Pipeline([
        ("scale", StandardScaler()),
        ("ae", Autoencoder(max_epochs=3, random_state=0, callbacks=[probe])),
    ])
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)  # MLflow puts artifacts in ./mlruns when the experiment is created
        run = track_fit(pipe, X, y, experiment_name="tests", run_name="ae",
                        tracking_uri=f"sqlite:///{store}/mlflow.db",
                        registered_model_name="aepipe-test")
    return run, pipe, probe


def _client(run):
    return mlflow.MlflowClient(tracking_uri=run.tracking_uri)


# ------------------------------------------------------------------ store / URIs
def test_import_aepipe_does_not_import_mlflow():
    code = "import sys, aepipe, aepipe.tracking; assert 'mlflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pyfunc_model_defines_without_mlflow_type_hint_warning():
    # MLflow warns at class definition when PythonModel.predict has no type hint.
    code = ("import warnings; warnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    import aepipe.tracking._model\n"
            "hints = [w for w in caught if 'type hint' in str(w.message).lower()]\n"
            "assert not hints, [str(w.message) for w in hints]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_resolve_tracking_uri_precedence(tmp_path, monkeypatch):
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert resolve_tracking_uri() == "sqlite:///elsewhere.db"
    assert resolve_tracking_uri("http://127.0.0.1:5005") == "http://127.0.0.1:5005"


def test_default_store_is_sqlite_in_working_directory(tmp_path, labelled):
    X, _ = labelled
    run = track_fit(PCADetector(n_components=2), X, log_model=False)
    assert run.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert (tmp_path / "mlflow.db").is_file()
    assert run.model_uri is None
    assert _client(run).get_run(run.run_id).info.status == "FINISHED"
    # The user's global MLflow state is left as it was.
    assert mlflow.active_run() is None


def test_unreachable_tracking_server_is_one_line_error(labelled):
    X, _ = labelled
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(TrackingError, match=r"Cannot reach the MLflow tracking server at http"):
        track_fit(PCADetector(), X, tracking_uri=uri)
    assert time.perf_counter() - start < 10


def test_unwritable_store_is_tracking_error(tmp_path, labelled):
    X, _ = labelled
    (tmp_path / "not-a-directory").write_text("")
    with pytest.raises(TrackingError, match="failed for tracking URI sqlite:///"):
        track_fit(PCADetector(), X, tracking_uri=f"sqlite:///{tmp_path}/not-a-directory/mlflow.db")


# ------------------------------------------------------------------ a tracked fit
def test_tracked_run_is_finished_with_readable_params(tracked):
    run, _, _ = tracked
    assert isinstance(run, TrackedRun)
    data = _client(run).get_run(run.run_id)
    assert data.info.status == "FINISHED"
    params = data.data.params
    assert params["pipeline"] == "scale=StandardScaler > ae=Autoencoder"
    assert params["ae.max_epochs"] == "3"
    assert params["ae.random_state"] == "0"
    assert params["scale.with_mean"] == "True"
    assert data.data.tags["aepipe.detector"] == "Autoencoder"


def test_losses_are_streamed_per_epoch_during_training(tracked):
    run, pipe, probe = tracked
    client = _client(run)
    train = client.get_metric_history(run.run_id, "train_loss")
    valid = client.get_metric_history(run.run_id, "valid_loss")
    history = pipe[-1].net_.history
    assert [m.step for m in train] == [1, 2, 3]
    assert [m.value for m in train] == pytest.approx(history[:, "train_loss"])
    assert [m.value for m in valid] == pytest.approx(history[:, "valid_loss"])
    # At the end of epoch k the store already held k train losses.
    assert probe.seen_ == [1, 2, 3]


def test_final_metrics(tracked, labelled):
    run, pipe, _ = tracked
    X, y = labelled
    logged = _client(run).get_run(run.run_id).data.metrics
    for key in ("threshold", "train_anomaly_rate", "train_score_p50", "train_score_p99",
                "train_roc_auc", "train_average_precision", "fit_time_s"):
        assert logged[key] == pytest.approx(run.metrics[key])
    assert run.metrics["threshold"] == pytest.approx(-pipe[-1].offset_)
    assert run.metrics["train_roc_auc"] == pytest.approx(anomaly_roc_auc(pipe, X, y))
    # In-sample metrics are named as such: nothing unlabelled next to a CV score.
    assert not {"roc_auc", "average_precision", "anomaly_rate"} & set(logged)


def test_plots_are_logged_as_png(tracked, tmp_path):
    run, _, _ = tracked
    client = _client(run)
    names = sorted(a.path for a in client.list_artifacts(run.run_id, "plots"))
    assert names == ["plots/codes.png", "plots/feature_contributions.png",
                     "plots/loss_curves.png", "plots/roc_pr_curves.png",
                     "plots/score_histogram.png"]
    local = client.download_artifacts(run.run_id, "plots", str(tmp_path))
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", local


def test_input_schema_is_recorded(tracked, monkeypatch):
    run, _, _ = tracked
    monkeypatch.setenv("MLFLOW_TRACKING_URI", run.tracking_uri)
    inputs = _client(run).get_run(run.run_id).inputs.dataset_inputs
    schema = json.loads(inputs[0].dataset.schema)["mlflow_colspec"]
    assert [c["name"] for c in schema] == COLUMNS
    info = mlflow.models.get_model_info(run.model_uri)
    assert info.signature.inputs.input_names() == COLUMNS
    assert [t.name for t in info.signature.inputs.input_types()] == ["double"] * 6
    assert "anomaly_score" in info.signature.outputs.input_names()
    assert info.saved_input_example_info is not None


def test_fitted_model_keeps_no_tracking_callback(tracked):
    _, pipe, probe = tracked
    assert pipe[-1].callbacks == [probe]
    assert not any(isinstance(cb, MlflowEpochLogger) for _, cb in pipe[-1].net_.callbacks_)


def test_loaded_model_scores_exactly_as_in_memory(tracked, labelled):
    run, pipe, _ = tracked
    X, _ = labelled
    new = X.iloc[::7]
    pd.testing.assert_frame_equal(load_model(run.model_uri, tracking_uri=run.tracking_uri)
                                  .predict(new), score_frame(pipe, new), check_exact=True)


def test_loaded_model_scores_exactly_in_a_fresh_process(tracked, labelled, tmp_path):
    run, pipe, _ = tracked
    X, _ = labelled
    X.to_csv(tmp_path / "x.csv", index=False)
    code = (
        "import sys, pandas as pd; from aepipe.tracking import load_model;"
        "m = load_model(sys.argv[1], tracking_uri=sys.argv[2]);"
        "m.predict(pd.read_csv(sys.argv[3])).to_pickle(sys.argv[4])"
    )
    # The pickled pipeline holds the test's probe callback: let the child import this module.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    subprocess.run([sys.executable, "-c", code, run.model_uri, run.tracking_uri,
                    str(tmp_path / "x.csv"), str(tmp_path / "out.pkl")], check=True, env=env)
    read_back = pd.read_csv(tmp_path / "x.csv")
    pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / "out.pkl"),
                                  score_frame(pipe, read_back), check_exact=True)


def test_registered_model_loads_by_name(tracked, labelled):
    run, pipe, _ = tracked
    X, _ = labelled
    versions = _client(run).search_model_versions("name='aepipe-test'")
    assert [str(v.version) for v in versions] == ["1"]
    model = load_model("models:/aepipe-test/1", tracking_uri=run.tracking_uri)
    np.testing.assert_array_equal(model.predict(X)["anomaly_score"],
                                  score_frame(pipe, X)["anomaly_score"])


# ------------------------------------------------------------------ the model's input checks
@pytest.fixture(scope="module")
def pca_model(labelled):
    X, _ = labelled
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCADetector(n_components=2))]).fit(X)
    return AnomalyModel(pipe, columns=COLUMNS), pipe


def test_model_selects_columns_by_name(pca_model, labelled):
    model, pipe = pca_model
    X, _ = labelled
    pd.testing.assert_frame_equal(model.predict(None, X[COLUMNS[::-1]]), score_frame(pipe, X))


@pytest.mark.parametrize("change, message", [
    (lambda X: X.drop(columns="c"), r"Missing column\(s\) \['c'\]"),
    (lambda X: X.assign(extra=1.0), r"Unexpected column\(s\) \['extra'\]"),
    (lambda X: X.astype({"b": object}).assign(b=["abc"] + [1.0] * (len(X) - 1)),
     r"Column 'b' must be numeric; row 0 has 'abc'"),
    (lambda X: X.assign(a=np.nan), r"a"),
    (lambda X: X.iloc[:0], "no rows"),
])
def test_model_rejects_bad_input_with_a_clear_message(pca_model, labelled, change, message):
    model, _ = pca_model
    X, _ = labelled
    with pytest.raises(InvalidModelInputError, match=message) as info:
        model.predict(None, change(X))
    # Both a DataValidationError for Python users and an MlflowException (HTTP 400) for serving.
    assert isinstance(info.value, DataValidationError)
    assert info.value.get_http_status_code() == 400


def test_numeric_strings_are_accepted(pca_model, labelled):
    model, pipe = pca_model
    X, _ = labelled
    as_text = X.head(3).astype(str)
    np.testing.assert_allclose(model.predict(None, as_text)["anomaly_score"],
                               score_frame(pipe, X.head(3))["anomaly_score"])


# ------------------------------------------------------------------ model URIs
def test_missing_model_uri_is_tracking_error(tracked):
    run, _, _ = tracked
    with pytest.raises(TrackingError, match="'models:/no-such-model/1' does not exist"):
        load_model("models:/no-such-model/1", tracking_uri=run.tracking_uri)


def test_missing_run_is_tracking_error(tracked):
    run, _, _ = tracked
    with pytest.raises(TrackingError, match="runs:/0123456789abcdef/model"):
        load_model("runs:/0123456789abcdef/model", tracking_uri=run.tracking_uri)


def test_corrupted_pipeline_file_is_model_file_error(tracked, tmp_path):
    run, _, _ = tracked
    with mlflow.tracking._tracking_service.utils._use_tracking_uri(run.tracking_uri):
        local = mlflow.artifacts.download_artifacts(run.model_uri, dst_path=str(tmp_path))
    pipeline_file = next((tmp_path / "artifacts").rglob("pipeline.aepipe")) \
        if (tmp_path / "artifacts").exists() else next(tmp_path.rglob("pipeline.aepipe"))
    pipeline_file.write_bytes(pipeline_file.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="truncated, corrupted"):
        load_model(local)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_store_is_a_tracking_error_and_one_cli_line(tracked, tmp_path, damage):
    import shutil

    from click.testing import CliRunner

    from aepipe.cli import cli

    run, _, _ = tracked
    source = Path(run.tracking_uri.removeprefix("sqlite:///"))
    copy = tmp_path / "mlflow.db"
    shutil.copy(source, copy)
    data = copy.read_bytes()
    copy.write_bytes(data[: len(data) // 3] if damage == "truncated" else
                     data[:100] + bytes(4096) + data[4196:])
    uri = f"sqlite:///{copy}"
    with pytest.raises(TrackingError, match="tracking URI sqlite:///"):
        load_model(run.model_uri, tracking_uri=uri)
    frame = tmp_path / "x.csv"
    pd.DataFrame({"a": [1.0]}).to_csv(frame, index=False)
    result = CliRunner().invoke(cli, ["score", "--model", run.model_uri, "--data", str(frame),
                                      "--out", str(tmp_path / "s.csv"), "--tracking-uri", uri])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output


def test_serve_command():
    argv = serve_command("models:/m-1", port=5123)
    assert argv[1:] == ["-m", "mlflow", "models", "serve", "-m", "models:/m-1",
                        "-h", "127.0.0.1", "-p", "5123", "--env-manager", "local"]


# ------------------------------------------------------------------ grid searches
def test_flatten_params_of_a_bare_estimator():
    params = flatten_params(PCADetector(n_components=2))
    assert params["n_components"] == "2"
    assert "pipeline" not in params


def test_search_has_parent_and_child_runs(labelled, tracked):
    X, y = labelled
    search = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("detector", PCADetector())]),
        {"detector": [PCADetector(n_components=1), PCADetector(n_components=2),
                      Autoencoder(max_epochs=2, random_state=0)]},
        scoring={"roc_auc": anomaly_roc_auc, "ap": anomaly_average_precision},
        refit="roc_auc", cv=2,
    )
    run = track_search(search, X, y, experiment_name="search",
                       tracking_uri=tracked[0].tracking_uri)
    client = _client(run)
    parent = client.get_run(run.run_id)
    assert parent.data.params["search.refit"] == "roc_auc"
    assert parent.data.metrics["best_index"] == search.best_index_
    children = sorted(
        client.search_runs([run.experiment_id], f"tags.mlflow.parentRunId = '{run.run_id}'"),
        key=lambda r: int(r.data.tags["aepipe.candidate"]),
    )
    assert len(children) == 3
    for index, child in enumerate(children):
        metrics, params = child.data.metrics, child.data.params
        assert metrics["mean_test_roc_auc"] == pytest.approx(
            search.cv_results_["mean_test_roc_auc"][index])
        for key in ("std_test_roc_auc", "mean_test_ap", "std_test_ap", "rank_test_roc_auc",
                    "mean_fit_time"):
            assert key in metrics
        assert params["detector"] == type(search.cv_results_["params"][index]["detector"]).__name__
    assert children[0].data.params["detector.n_components"] == "1"
    model = load_model(run.model_uri, tracking_uri=run.tracking_uri)
    np.testing.assert_array_equal(model.predict(X)["anomaly_score"],
                                  score_frame(search.best_estimator_, X)["anomaly_score"])


def test_category_columns_and_no_leaked_experiment():
    """A frame with pandas 'category' columns logs and serves; the caller's
    active experiment is left as it was."""
    import mlflow

    from aepipe import Autoencoder
    from aepipe.tracking import load_model, track_fit

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "a": rng.normal(size=60),
        "b": rng.normal(size=60),
        "c": pd.Categorical(rng.choice(["x", "y"], 60)),
    })
    model = Autoencoder(max_epochs=2, random_state=0)
    run = track_fit(model, frame)
    served = load_model(run.model_uri).predict(frame.astype({"c": object}).head(5))
    np.testing.assert_array_equal(
        served["anomaly_score"].to_numpy(), model.anomaly_score(frame.head(5))
    )
    assert mlflow.tracking.fluent._active_experiment_id is None


def test_windowed_detector_logs_a_whole_window_as_example():
    from aepipe.sensor import WindowedAutoencoder
    from aepipe.tracking import load_model, track_fit

    frame = pd.DataFrame(np.random.default_rng(1).normal(size=(80, 3)), columns=list("pqr"))
    run = track_fit(WindowedAutoencoder(width=16, max_epochs=2, random_state=0), frame)
    assert load_model(run.model_uri).predict(frame.head(20)).shape[0] == 20
