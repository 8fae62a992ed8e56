"""Searches and scoring on a real Dask cluster (2 worker processes, loopback only)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe", reason="needs the dask extra: pip install 'aepipe[dask]'")
pytest.importorskip("distributed", reason="needs the dask extra: pip install 'aepipe[dask]'")

import dask.dataframe as dd  # noqa: E402
from dask import delayed as dask_delayed  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from aepipe.distributed import score_dask, score_file_distributed, search_on_dask  # noqa: E402
from aepipe.estimators import Autoencoder, PCADetector  # noqa: E402
from aepipe.scoring import anomaly_roc_auc, score_frame  # noqa: E402

COLUMNS = [f"sensor_{j}" for j in range(6)]


def _has_tracking() -> bool:
    return importlib.util.find_spec("aepipe.tracking") is not None


@pytest.fixture(scope="module")
def client():
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
        host="127.0.0.1",
    ) as cluster, Client(cluster, set_as_default=False) as dask_client:
        yield dask_client


@pytest.fixture
def frame(subspace_data):
    X, y = subspace_data
    return pd.DataFrame(X, columns=COLUMNS), y


def _search(autoencoder=True, refit=True):
    """The AE-vs-PCA search, kept tiny: one epoch, two folds."""
    pipeline = Pipeline([("detector", PCADetector())])
    grid = [{"detector": [PCADetector(random_state=0)], "detector__n_components": [1, 2]}]
    if autoencoder:
        grid = [
            {"detector": [Autoencoder(latent_dim=2, max_epochs=1, batch_size=64,
                                      early_stopping=False, random_state=0)]},
            {"detector": [PCADetector(n_components=2, random_state=0)]},
        ]
    return GridSearchCV(pipeline, grid, scoring=anomaly_roc_auc, cv=2, refit=refit)


@pytest.fixture(scope="module")
def fitted_model():
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(120, 6)) @ rng.normal(size=(6, 6)), columns=COLUMNS)
    return _model().fit(X)


def _model():
    return Pipeline([
        ("detector", Autoencoder(latent_dim=2, max_epochs=2, early_stopping=False,
                                 random_state=0)),
    ])


def _records(n_rows=157, seed=3):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n_rows, 6)), columns=COLUMNS)
    X.insert(0, "record_id", np.arange(1000, 1000 + n_rows))
    return X


def test_importing_aepipe_distributed_does_not_import_dask():
    code = ("import sys, aepipe, aepipe.distributed; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- search
def test_search_on_dask_matches_local_search(client, frame):
    import torch

    X, y = frame
    threads_before = torch.get_num_threads()
    local = clone(_search()).fit(X, y)
    remote = search_on_dask(_search(), X, y, client=client)

    for key in ("mean_test_score", "split0_test_score", "split1_test_score", "rank_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert remote.cv_results_["params"].__repr__() == local.cv_results_["params"].__repr__()
    assert repr(remote.best_params_) == repr(local.best_params_)
    np.testing.assert_array_equal(remote.score_samples(X), local.score_samples(X))
    # The search ran on the workers; this process's torch settings are untouched.
    assert torch.get_num_threads() == threads_before


def test_torch_threads_capped_during_call_and_restored(client):
    from aepipe.distributed._cluster import torch_threads_on

    def threads():
        import torch

        return torch.get_num_threads()

    before = client.run(threads)
    with torch_threads_on(client, 1):
        assert set(client.run(threads).values()) == {1}
    assert client.run(threads) == before


@pytest.mark.parametrize("torch_threads", [0, 1.5, "1"])
def test_search_on_dask_rejects_bad_torch_threads(client, frame, torch_threads):
    X, y = frame
    with pytest.raises(ValueError, match="torch_threads=.* must be a positive int"):
        search_on_dask(_search(), X, y, client=client, torch_threads=torch_threads)


def test_search_on_dask_tracking_kwargs_need_track(client, frame):
    X, y = frame
    with pytest.raises(TypeError, match="pass track=True"):
        search_on_dask(_search(), X, y, client=client, experiment_name="x")


def test_search_on_dask_records_mlflow_child_runs(client, frame, tmp_path):
    if not _has_tracking():
        pytest.skip("aepipe.tracking is not available yet")
    import mlflow

    X, y = frame
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # The child runs are the point here, not the fits or the refitted model.
    search = _search(autoencoder=False, refit=False)
    run = search_on_dask(search, X, y, client=client, track=True,
                         experiment_name="dask-search", tracking_uri=uri, log_model=False)
    assert run.run_id
    assert hasattr(search, "cv_results_")
    runs = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("dask-search").experiment_id]
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}


# ---------------------------------------------------------------- scoring
def test_score_dask_equals_in_memory_scoring(client, fitted_model):
    X = _records().drop(columns="record_id")
    ddf = dd.from_pandas(X, npartitions=4)
    scores = score_dask(fitted_model, ddf, top_k=2)
    expected = score_frame(fitted_model, X, top_k=2)

    assert list(scores.columns) == list(expected.columns)
    assert dict(scores.dtypes) == dict(expected.dtypes)
    result = client.compute(scores).result()
    pd.testing.assert_frame_equal(result, expected)


def test_score_dask_passes_id_column_through(client, fitted_model):
    X = _records()
    scores = score_dask(fitted_model, dd.from_pandas(X, npartitions=3), id_column="record_id")
    result = client.compute(scores).result()
    expected = score_frame(fitted_model, X.drop(columns="record_id"))
    expected.insert(0, "record_id", X["record_id"])
    pd.testing.assert_frame_equal(result, expected)


def test_score_dask_empty_partition(fitted_model):
    X = _records(20).drop(columns="record_id")
    ddf = dd.from_pandas(X, npartitions=2)
    ddf = ddf[ddf["sensor_0"] > 100]  # every partition empty
    result = score_dask(fitted_model, ddf).compute(scheduler="synchronous")
    assert len(result) == 0
    assert result["predicted_anomaly"].dtype == bool


def test_score_dask_rejects_unknown_id_column(fitted_model):
    ddf = dd.from_pandas(_records(10), npartitions=1)
    with pytest.raises(ValueError, match="id_column='missing' is not a column"):
        score_dask(fitted_model, ddf, id_column="missing")


def _write_records(records, data_path: Path) -> str | int:
    """Write records as CSV or a Parquet directory; return a blocksize giving several partitions."""
    if data_path.suffix == ".csv":
        records.to_csv(data_path, index=False)
        return 2_000
    data_path.mkdir()
    for i, start in enumerate(range(0, len(records), 50)):
        records.iloc[start:start + 50].to_parquet(data_path / f"part.{i}.parquet")
    return "64MB"


def _read_output(path: Path) -> pd.DataFrame:
    if path.is_dir():
        if path.suffix == ".csv":
            return pd.concat([pd.read_csv(p) for p in sorted(path.glob("*.csv"))],
                             ignore_index=True)
        return pd.read_parquet(path)
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


@pytest.mark.parametrize("single_file", [True, False])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_file_distributed_equals_in_memory(client, fitted_model, tmp_path, suffix,
                                                 single_file):
    records = _records()
    data_path = tmp_path / f"records{suffix}"
    blocksize = _write_records(records, data_path)
    out_path = tmp_path / f"scores{suffix}"

    n_rows = score_file_distributed(
        fitted_model, data_path, out_path, scheduler=client, id_column="record_id", top_k=2,
        blocksize=blocksize, single_file=single_file,
    )

    assert n_rows == len(records)
    assert out_path.is_file() is single_file
    result = _read_output(out_path)
    expected = score_frame(fitted_model, records.drop(columns="record_id"), top_k=2)
    expected.insert(0, "record_id", records["record_id"])
    pd.testing.assert_frame_equal(result, expected, check_dtype=False, check_exact=False,
                                  rtol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {data_path.name, out_path.name}
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_file_distributed_numbers_rows_without_id_column(client, fitted_model, tmp_path,
                                                               suffix):
    records = _records().drop(columns="record_id")
    data_path = tmp_path / f"records{suffix}"
    blocksize = _write_records(records, data_path)
    out_path = tmp_path / "scores.csv"

    score_file_distributed(fitted_model, data_path, out_path, scheduler=client,
                           blocksize=blocksize)

    result = pd.read_csv(out_path)
    assert list(result.columns[:2]) == ["row", "anomaly_score"]
    assert result["row"].tolist() == list(range(len(records)))
    np.testing.assert_allclose(result["anomaly_score"],
                               score_frame(fitted_model, records)["anomaly_score"], rtol=1e-12)


def test_score_file_distributed_csv_has_several_partitions(fitted_model, tmp_path):
    data_path = tmp_path / "records.csv"
    _records().to_csv(data_path, index=False)
    assert dd.read_csv(data_path, blocksize=2_000).npartitions > 1


def test_score_file_distributed_replaces_existing_output(client, fitted_model, tmp_path):
    data_path = tmp_path / "records.csv"
    _records(30).to_csv(data_path, index=False)
    out_path = tmp_path / "scores.csv"
    out_path.write_text("stale\n")
    n_rows = score_file_distributed(fitted_model, data_path, out_path, scheduler=client,
                                    id_column="record_id")
    assert n_rows == 30
    assert len(pd.read_csv(out_path)) == 30


def test_score_file_distributed_local_scheduler(fitted_model, tmp_path):
    data_path = tmp_path / "records.csv"
    _records(40).to_csv(data_path, index=False)
    out_path = tmp_path / "scores.parquet"
    n_rows = score_file_distributed(fitted_model, data_path, out_path, scheduler="synchronous",
                                    id_column="record_id")
    assert n_rows == 40
    assert out_path.is_file()
    assert pd.read_parquet(out_path)["record_id"].tolist() == list(range(1000, 1040))


def test_score_file_distributed_failure_leaves_no_output(fitted_model, tmp_path):
    data_path = tmp_path / "records.csv"
    records = _records(20).drop(columns="sensor_5")  # the model needs six sensors
    records.to_csv(data_path, index=False)
    out_path = tmp_path / "scores.csv"
    with pytest.raises(ValueError):
        score_file_distributed(fitted_model, data_path, out_path, scheduler="synchronous",
                               id_column="record_id")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.csv"]


def test_score_file_distributed_rejects_unknown_output_format(fitted_model, tmp_path):
    with pytest.raises(ValueError, match=r"out_path=.* must end in .csv"):
        score_file_distributed(fitted_model, tmp_path / "in.csv", tmp_path / "out.json",
                               scheduler="synchronous")


def test_score_file_distributed_with_mlflow_model_uri(client, tmp_path):
    if not _has_tracking():
        pytest.skip("aepipe.tracking is not available yet")
    import mlflow

    from aepipe.tracking import log_model

    records = _records(90)
    features = records.drop(columns="record_id")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model = Pipeline([("detector", PCADetector(n_components=2))]).fit(features)
    mlflow.set_tracking_uri(uri)
    try:
        # An explicit experiment: MLflow's active experiment is process-global.
        experiment_id = mlflow.MlflowClient(uri).create_experiment("dask-scoring")
        with mlflow.start_run(experiment_id=experiment_id):
            model_uri = log_model(model, features)
    finally:
        mlflow.set_tracking_uri(None)
    data_path = tmp_path / "records.parquet"
    records.to_parquet(data_path)
    out_path = tmp_path / "scores.csv"

    n_rows = score_file_distributed(model_uri, data_path, out_path, scheduler=client,
                                    id_column="record_id", top_k=2, tracking_uri=uri)

    assert n_rows == 90
    expected = score_frame(model, features, top_k=2)
    expected.insert(0, "record_id", records["record_id"])
    pd.testing.assert_frame_equal(pd.read_csv(out_path), expected, check_dtype=False,
                                  check_exact=False, rtol=1e-12)
    # The model's own input checks apply, as in `aepipe score`: no silently dropped columns.
    with pytest.raises(ValueError, match=r"Unexpected column\(s\) \['extra'\]"):
        score_dask(model_uri, dd.from_pandas(features.assign(extra=1.0), npartitions=2),
                   tracking_uri=uri)


# ---------------------------------------------------------------- windowed models
def _stream(n_rows=240, seed=5):
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)[:, None]
    values = np.sin(t / np.arange(3, 9)) + 0.1 * rng.normal(size=(n_rows, 6))
    values[150:160, 2] += 3.0
    return pd.DataFrame(values, columns=COLUMNS)


@pytest.fixture(scope="module")
def windowed_model():
    from aepipe.sensor import WindowedPCA

    return WindowedPCA(width=16).fit(_stream(seed=6))


@pytest.mark.parametrize("sizes", [[60, 60, 60, 60], [100, 5, 0, 3, 132], [7] * 34 + [2]])
def test_score_dask_windowed_model_scores_do_not_depend_on_partitions(windowed_model, sizes):
    """Partitions of any size, shorter than the window or empty, borrow their neighbours' rows."""
    X = _stream()
    X.insert(0, "record_id", np.arange(len(X)))
    bounds = np.cumsum([0] + sizes)
    ddf = dd.from_delayed([dask_delayed(X.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])],
                          meta=X.iloc[:0])
    scores = score_dask(windowed_model, ddf, id_column="record_id", top_k=2)
    result = scores.compute(scheduler="synchronous")
    expected = score_frame(windowed_model, X.drop(columns="record_id"), top_k=2)
    expected.insert(0, "record_id", X["record_id"])
    pd.testing.assert_frame_equal(result, expected, check_exact=False, rtol=1e-12)


def test_score_file_distributed_windowed_model_equals_in_memory(client, windowed_model,
                                                                 tmp_path):
    X = _stream()
    data_path = tmp_path / "stream.csv"
    X.to_csv(data_path, index=False)
    assert dd.read_csv(data_path, blocksize=1_500).npartitions > 5
    out_path = tmp_path / "scores.csv"
    score_file_distributed(windowed_model, data_path, out_path, scheduler=client,
                           blocksize=1_500)
    result = pd.read_csv(out_path)
    np.testing.assert_allclose(result["anomaly_score"],
                               score_frame(windowed_model, X)["anomaly_score"], rtol=1e-9)


def test_score_dask_windowed_model_refuses_runs_of_tiny_partitions(windowed_model):
    X = _stream()
    sizes = [100] + [1] * 12 + [128]  # 8 one-row partitions cannot give 15 rows of context
    bounds = np.cumsum([0] + sizes)
    ddf = dd.from_delayed([dask_delayed(X.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])],
                          meta=X.iloc[:0])
    scores = score_dask(windowed_model, ddf, top_k=0)
    with pytest.raises(ValueError, match="fewer than the 15 rows of context.*larger partitions"):
        scores.compute(scheduler="synchronous")


# ---------------------------------------------------------------- many series
def _fleet(n_rows=120, pumps=("p1", "p2", "p3"), seed=8):
    """Several pumps' streams interleaved row by row, as a fleet's table arrives."""
    frames = []
    for k, pump in enumerate(pumps):
        frame = _stream(n_rows, seed=seed + k)
        frame.insert(0, "pump", pump)
        frame.index = np.arange(n_rows) * len(pumps) + k
        frames.append(frame)
    return pd.concat(frames).sort_index()


@pytest.fixture(scope="module", params=["shared", "per_series"])
def fleet_model(request):
    from aepipe.sensor import PerSeriesDetector, WindowedPCA

    if request.param == "shared":
        return WindowedPCA(width=16, series_column="pump").fit(_fleet(seed=20))
    return PerSeriesDetector(WindowedPCA(width=16), series_column="pump").fit(_fleet(seed=20))


@pytest.mark.parametrize("npartitions", [1, 4, 13])
def test_score_dask_scores_each_series_whole(fleet_model, npartitions):
    """Series interleaved across partitions score as in memory, each as one stream."""
    X = _fleet()
    X.insert(0, "record_id", np.arange(len(X)) + 500)
    ddf = dd.from_pandas(X, npartitions=npartitions)
    result = score_dask(fleet_model, ddf, id_column="record_id", top_k=2).compute(
        scheduler="synchronous")
    expected = score_frame(fleet_model, X.drop(columns="record_id"), top_k=2)
    expected.insert(0, "record_id", X["record_id"])
    pd.testing.assert_frame_equal(result.loc[expected.index], expected, check_exact=False,
                                  rtol=1e-12)
    assert len(result) == len(X) and result.index.is_unique


@pytest.mark.parametrize("id_column", [None, "record_id"])
def test_score_file_distributed_fleet_keeps_input_order(client, fleet_model, tmp_path,
                                                        id_column):
    X = _fleet()
    if id_column:
        X.insert(0, id_column, np.random.default_rng(0).permutation(len(X)))  # not the order
    data_path = tmp_path / "fleet.csv"
    X.to_csv(data_path, index=False)
    assert dd.read_csv(data_path, blocksize=4_000).npartitions > 3
    out_path = tmp_path / "scores.csv"
    n_rows = score_file_distributed(fleet_model, data_path, out_path, scheduler=client,
                                    blocksize=4_000, id_column=id_column)
    result = pd.read_csv(out_path)
    assert n_rows == len(X)
    if id_column:
        np.testing.assert_array_equal(result[id_column], X[id_column])
        assert list(result.columns)[:2] == [id_column, "anomaly_score"]
        X = X.drop(columns=id_column)
    else:
        np.testing.assert_array_equal(result["row"], np.arange(len(X)))
    np.testing.assert_allclose(result["anomaly_score"],
                               score_frame(fleet_model, X)["anomaly_score"], rtol=1e-9)


def test_score_dask_names_a_missing_series_column(fleet_model):
    ddf = dd.from_pandas(_fleet().drop(columns="pump"), npartitions=2)
    with pytest.raises(ValueError, match="series column 'pump' is not a column"):
        score_dask(fleet_model, ddf)
