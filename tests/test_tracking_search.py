"""A tracked search describes, in MLflow, the model it logs (real SQLite store, no mocks)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from aepipe.estimators import Autoencoder, PCADetector
from aepipe.scoring import get_scorer

mlflow = pytest.importorskip("mlflow")

from aepipe.tracking import track_search  # noqa: E402

COLUMNS = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A search whose base step (PCA at 0.95) is not in the grid and is not the winner."""
    rng = np.random.default_rng(42)
    basis = rng.normal(size=(2, 6))
    normal = rng.normal(size=(150, 2)) @ basis + 0.05 * rng.normal(size=(150, 6))
    anomalies = rng.normal(size=(10, 2)) @ basis + rng.normal(scale=2.0, size=(10, 6))
    order = rng.permutation(160)
    X = pd.DataFrame(np.vstack([normal, anomalies])[order], columns=COLUMNS)
    y = np.r_[np.zeros(150, dtype=int), np.ones(10, dtype=int)][order]
    search = GridSearchCV(
        Pipeline([("model", PCADetector(n_components=0.95))]),
        [{"model": [Autoencoder(max_epochs=2, early_stopping=False, random_state=0)],
          "model__latent_dim": [5]},
         {"model__n_components": [2, 6]}],
        scoring={"anomaly_roc_auc": get_scorer("anomaly_roc_auc"),
                 "anomaly_average_precision": get_scorer("anomaly_average_precision")},
        refit="anomaly_roc_auc", cv=KFold(2, shuffle=True, random_state=0),
    )
    store = tmp_path_factory.mktemp("search-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        run = track_search(search, X, y, experiment_name="search",
                           tracking_uri=f"sqlite:///{store}/mlflow.db")
    client = mlflow.MlflowClient(tracking_uri=run.tracking_uri)
    children = sorted(
        client.search_runs([run.experiment_id], f"tags.mlflow.parentRunId = '{run.run_id}'"),
        key=lambda r: int(r.data.tags["aepipe.candidate"]))
    return search, run, client, children


def test_the_search_picks_a_candidate_unlike_the_base_step(searched):
    search, _, _, _ = searched
    assert search.best_params_ == {"model__n_components": 2}


def test_parent_params_and_tags_describe_the_logged_model(searched):
    search, run, client, _ = searched
    parent = client.get_run(run.run_id).data
    assert parent.params["model"] == "PCADetector"
    assert parent.params["model.n_components"] == "2"  # not the base step's 0.95
    assert parent.tags["aepipe.detector"] == "PCADetector"
    assert parent.tags["best.model.n_components"] == "2"
    # MLflow copies the run's parameters to the logged model's page.
    model = client.get_logged_model(run.model_uri.removeprefix("models:/"))
    assert model.params["model.n_components"] == "2"


def test_scorers_are_logged_by_name(searched):
    _, run, client, _ = searched
    params = client.get_run(run.run_id).data.params
    assert params["search.scoring"] == "anomaly_roc_auc, anomaly_average_precision"
    assert params["search.refit"] == "anomaly_roc_auc"


def test_in_sample_and_cross_validated_metrics_are_labelled(searched):
    search, run, client, _ = searched
    metrics = client.get_run(run.run_id).data.metrics
    best = search.best_index_
    assert metrics["cv_anomaly_roc_auc"] == pytest.approx(
        search.cv_results_["mean_test_anomaly_roc_auc"][best])
    assert metrics["cv_anomaly_average_precision_std"] == pytest.approx(
        search.cv_results_["std_test_anomaly_average_precision"][best])
    assert {"train_roc_auc", "train_average_precision", "train_anomaly_rate"} <= set(metrics)
    assert not {"roc_auc", "average_precision", "best_score"} & set(metrics)


def test_child_runs_are_named_by_class_and_searched_values(searched):
    _, _, _, children = searched
    assert [child.info.run_name for child in children] == [
        "Autoencoder latent_dim=5", "PCADetector n_components=2", "PCADetector n_components=6"]
    assert [child.data.tags["aepipe.detector"] for child in children] == [
        "Autoencoder", "PCADetector", "PCADetector"]
    # The candidate's full parameters, not only the searched ones.
    assert children[0].data.params["model.latent_dim"] == "5"
    assert children[0].data.params["model.max_epochs"] == "2"


def test_child_runs_carry_each_folds_per_epoch_losses(searched):
    _, _, client, children = searched
    autoencoder = children[0].info.run_id
    for fold in (1, 2):
        history = client.get_metric_history(autoencoder, f"train_loss_fold{fold}")
        assert [m.step for m in history] == [1, 2]
        assert all(np.isfinite(m.value) for m in history)
    assert not client.get_metric_history(autoencoder, "train_loss_fold3")
    # PCA trains no net: no curves.
    assert not [k for k in children[1].data.metrics if "loss" in k]


def test_search_scoring_is_restored(searched):
    search, _, _, _ = searched
    assert list(search.scoring) == ["anomaly_roc_auc", "anomaly_average_precision"]
    assert search.scoring["anomaly_roc_auc"] is get_scorer("anomaly_roc_auc")


@pytest.mark.slow  # starting the worker processes takes most of a minute on one core
def test_curves_are_recorded_from_worker_processes(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 4)), columns=list("abcd"))
    search = GridSearchCV(
        Autoencoder(max_epochs=2, early_stopping=False, random_state=0),
        {"latent_dim": [1, 2]}, scoring=get_scorer("synthetic_anomaly_auc"), cv=2, n_jobs=2,
    )
    run = track_search(search, X, log_model=False, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    client = mlflow.MlflowClient(tracking_uri=run.tracking_uri)
    children = client.search_runs([run.experiment_id],
                                  f"tags.mlflow.parentRunId = '{run.run_id}'")
    assert sorted(child.info.run_name for child in children) == [
        "Autoencoder latent_dim=1", "Autoencoder latent_dim=2"]
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "train_loss_fold2")) == 2
    params = client.get_run(run.run_id).data.params
    assert params["search.scoring"] == "synthetic_anomaly_auc"
