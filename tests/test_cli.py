"""The aepipe CLI, driven through click's CliRunner and as a real subprocess.

Every test runs in its own working directory with its own MLflow SQLite store
(see conftest.py). Data are tiny and training runs 1-2 epochs.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from aepipe.cli import cli
from aepipe.datasets import make_mixed_table

COMMANDS = ["demo", "fit", "score", "compare", "explain", "serve", "neighbors"]

TINY_AE = {
    "description": "tiny autoencoder for tests",
    "steps": [
        {
            "estimator": "Autoencoder",
            "params": {"max_epochs": 2, "latent_dim": 2, "early_stopping": False,
                       "random_state": 0},
        }
    ],
}

TINY_SEARCH = {
    "steps": [{"estimator": "PCADetector"}],
    "search": {
        "param_grid": [
            {"detector": [{"estimator": "Autoencoder",
                           "params": {"max_epochs": 1, "early_stopping": False,
                                      "random_state": 0}}]},
            {"detector": [{"estimator": "PCADetector"}], "detector__n_components": [2]},
        ],
        "cv": 2,
    },
}


def _aepipe_argv():
    script = Path(sys.executable).with_name("aepipe")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aepipe.cli"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, code=1, match=None):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    if match is not None:
        assert match in lines[0], lines[0]


@pytest.fixture
def table_csv(tmp_path):
    data = make_mixed_table(200, random_state=0)
    frame = data.X.astype({"segment": object, "channel": object})
    frame.insert(0, "record_id", np.arange(1000, 1200))
    frame["label"] = data.y.to_numpy()
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_AE))
    return path


@pytest.fixture
def fitted_model(table_csv, config_file):
    result = invoke("fit", "--pipeline", config_file, "--data", table_csv,
                    "--label-column", "label", "--drop-column", "record_id")
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    result = invoke(*([command] if command else []), "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.output
    if command:
        assert command in result.output


def test_demo_quick_tracks_search_and_writes_plots(tmp_path):
    import mlflow

    out_dir = tmp_path / "demo-out"
    result = invoke("demo", "--quick", "--no-progress", "--out-dir", out_dir)
    assert result.exit_code == 0, result.output
    for header in ("rank", "model", "ROC-AUC", "AP", "fit time (s)"):
        assert header in result.stdout
    for family in ("Autoencoder", "DenoisingAutoencoder", "SparseAutoencoder",
                   "ContractiveAutoencoder", "VariationalAutoencoder", "PCADetector"):
        assert f" {family} " in result.stdout
    for name in ("leaderboard.png", "scores.png", "top_columns.png", "leaderboard.csv", "data.csv"):
        assert (out_dir / name).stat().st_size > 0
    assert (out_dir / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(out_dir / "leaderboard.csv")) == 6
    # A real store in the working directory: one parent run and one child per candidate.
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("aepipe")
    assert len(client.search_runs([experiment.experiment_id])) == 7
    assert "Model URI: models:/" in result.stdout


def test_fit_score_explain_round_trip(tmp_path, table_csv, fitted_model):
    assert fitted_model.startswith("models:/")
    out = tmp_path / "scores.csv"
    # A real process, as a user runs it: console script, exit code, files.
    proc = subprocess.run(
        [*_aepipe_argv(), "score", "--model", fitted_model, "--data", str(table_csv),
         "--out", str(out), "--id-column", "record_id", "--drop-column", "label",
         "--chunk-size", "64", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    scores = pd.read_csv(out)
    assert list(scores.columns[:3]) == ["record_id", "anomaly_score", "predicted_anomaly"]
    assert "top3_column" in scores.columns
    assert scores["record_id"].tolist() == list(range(1000, 1200))

    # Chunking does not change the scores; Parquet output and row numbers work.
    parquet = tmp_path / "scores.parquet"
    result = invoke("score", "--model", fitted_model, "--data", table_csv, "--out", parquet,
                    "--drop-column", "label", "--drop-column", "record_id", "--chunk-size", "1000",
                    "--top-k", "1")
    assert result.exit_code == 0, result.output
    whole = pd.read_parquet(parquet)
    assert whole["row"].tolist() == list(range(200))
    np.testing.assert_allclose(whole["anomaly_score"], scores["anomaly_score"], rtol=1e-5)
    assert "top2_column" not in whole.columns

    if importlib.util.find_spec("dask") and importlib.util.find_spec("distributed"):
        dask_out = tmp_path / "dask_scores.csv"
        unlabelled = tmp_path / "unlabelled.csv"
        pd.read_csv(table_csv).drop(columns=["label"]).to_csv(unlabelled, index=False)
        result = invoke("score", "--model", fitted_model, "--data", unlabelled, "--out", dask_out,
                        "--id-column", "record_id", "--scheduler", "synchronous")
        assert result.exit_code == 0, result.output
        on_dask = pd.read_csv(dask_out)
        assert on_dask["record_id"].tolist() == scores["record_id"].tolist()
        np.testing.assert_allclose(on_dask["anomaly_score"], scores["anomaly_score"], rtol=1e-5)

    result = invoke("explain", "--model", fitted_model, "--data", table_csv,
                    "--id-column", "record_id", "--drop-column", "label", "--rows", "4",
                    "--top-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5
    top_id = int(scores.loc[scores["anomaly_score"].idxmax(), "record_id"])
    assert lines[1].startswith(f"record_id={top_id}")

    result = invoke("serve", "--model", fitted_model, "--port", "5123", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "mlflow models serve" in result.stdout and "--env-manager local" in result.stdout


def test_score_failure_leaves_no_partial_output(tmp_path, table_csv, fitted_model):
    frame = pd.read_csv(table_csv)
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[150, "amount"] = "not-a-number"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "scores.csv"
    out.write_text("previous result\n")
    result = invoke("score", "--model", fitted_model, "--data", bad, "--out", out,
                    "--id-column", "record_id", "--drop-column", "label", "--chunk-size", "50")
    assert_one_line_error(result, match="amount")
    assert out.read_text() == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".scores")) == []


def test_fit_search_config_prints_leaderboard(tmp_path, table_csv):
    config = tmp_path / "search.json"
    config.write_text(json.dumps(TINY_SEARCH))
    result = invoke("compare", "--pipeline", config, "--data", table_csv,
                    "--label-column", "label", "--drop-column", "record_id",
                    "--out-dir", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "PCADetector" in result.stdout and "Autoencoder" in result.stdout
    assert (tmp_path / "cmp" / "leaderboard.png").exists()


@pytest.mark.parametrize(
    "args, code, match",
    [
        (["fit", "--pipeline", "tabular", "--data", "missing.csv"], 1, "missing.csv"),
        (["fit", "--pipeline", "no_such_config", "--data", "{csv}"], 1, "ready-made"),
        (["fit", "--pipeline", "{bad_config}", "--data", "{csv}"], 1, "'stepz'"),
        (["fit", "--pipeline", "{config}", "--data", "{csv}", "--label-column", "nope"], 1,
         "'nope'"),
        (["fit", "--pipeline", "{config}", "--data", "{csv}", "--id-column", "record_id",
          "--tracking-uri", "http://127.0.0.1:9"], 1, "Cannot reach"),
        (["fit", "--pipeline", "{config}", "--data", "{txt}"], 2, "unsupported suffix"),
        (["score", "--model", "no/such/model", "--data", "{csv}", "--out", "o.csv"], 1,
         "no/such/model"),
        (["score", "--model", "x", "--data", "{csv}", "--out", "o.csv", "--id-column", "nope"],
         1, "--id-column 'nope'"),
        (["score", "--model", "x", "--data", "{csv}", "--out", "o.xlsx"], 2, "o.xlsx"),
        (["score", "--data", "{csv}", "--out", "o.csv"], 2, "--model"),
        (["explain", "--model", "{csv}", "--data", "{csv}"], 1, "not an MLflow model"),
        (["compare", "--data", "{csv}", "--label-column", "segment"], 1, "0/1"),
        (["demo", "--n-samples", "5"], 2, "--n-samples"),
    ],
)
def test_errors_exit_nonzero_with_one_line(tmp_path, table_csv, config_file, args, code, match):
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps({**TINY_AE, "stepz": []}))
    txt = tmp_path / "table.xlsx"
    shutil.copy(table_csv, txt)
    paths = {"csv": table_csv, "config": config_file, "bad_config": bad_config, "txt": txt}
    result = invoke(*[a.format(**paths) for a in args])
    assert_one_line_error(result, code=code, match=match)


def test_scheduler_without_dask_is_one_line(tmp_path, table_csv, monkeypatch):
    monkeypatch.setitem(sys.modules, "aepipe.distributed", None)
    result = invoke("score", "--model", "models:/m-1", "--data", table_csv, "--out", "o.csv",
                    "--scheduler", "tcp://127.0.0.1:8786")
    assert_one_line_error(result, code=2, match="needs the dask extra")


def test_scheduler_rejects_on_error_skip(tmp_path, table_csv):
    result = invoke("score", "--model", "models:/m-1", "--data", table_csv, "--out", "o.csv",
                    "--scheduler", "tcp://127.0.0.1:8786", "--on-error", "skip")
    assert_one_line_error(result, code=2, match="not supported with --scheduler")


def test_error_in_a_real_process_is_one_line(tmp_path):
    proc = subprocess.run(
        [*_aepipe_argv(), "score", "--model", "models:/nope", "--data", "absent.csv",
         "--out", "o.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "AEPIPE_DEBUG": ""},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["Error: Data file not found: 'absent.csv'."]


# ------------------------------------------------------------------ windowed models in chunks
TINY_SENSOR = {
    "steps": [{"estimator": "WindowedAutoencoder",
               "params": {"width": 8, "max_epochs": 2, "early_stopping": False,
                          "random_state": 0}}],
}


def test_score_of_a_windowed_model_does_not_depend_on_chunk_size(tmp_path):
    from aepipe.datasets import make_sensor_stream

    stream = make_sensor_stream(240, 3, n_anomalies=2, random_state=0)
    frame = stream.X.reset_index(drop=True)
    frame.insert(0, "t", np.arange(len(frame)))
    data = tmp_path / "stream.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "sensor.json"
    config.write_text(json.dumps(TINY_SENSOR))
    fitted = invoke("fit", "--pipeline", config, "--data", data, "--drop-column", "t")
    assert fitted.exit_code == 0, fitted.output
    model = fitted.stdout.strip().splitlines()[-1]
    outputs = []
    for chunk_size in (1000, 50, 5):
        out = tmp_path / f"scores_{chunk_size}.csv"
        result = invoke("score", "--model", model, "--data", data, "--out", out,
                        "--id-column", "t", "--chunk-size", chunk_size, "--no-progress")
        assert result.exit_code == 0, result.output
        outputs.append(pd.read_csv(out))
    if importlib.util.find_spec("distributed") is not None:
        # The MLflow model on Dask, in partitions of ~25 rows: each borrows its neighbours' rows.
        from aepipe.distributed import score_file_distributed

        out = tmp_path / "scores_dask.csv"
        score_file_distributed(model, data, out, scheduler="synchronous", id_column="t",
                               blocksize=1_500)
        outputs.append(pd.read_csv(out))
    for other in outputs[1:]:
        np.testing.assert_array_equal(other["t"], outputs[0]["t"])
        np.testing.assert_allclose(other["anomaly_score"], outputs[0]["anomaly_score"],
                                   rtol=1e-5)
    assert len(outputs[0]) == len(frame)


def test_scores_file_gets_the_umask_mode_not_the_temporary_files(tmp_path):
    import stat

    from aepipe.cli._io import atomic_table_writer

    previous = os.umask(0o022)
    try:
        with atomic_table_writer(tmp_path / "scores.csv") as writer:
            writer.write(pd.DataFrame({"anomaly_score": [1.0, 2.0]}))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "scores.csv").stat().st_mode) == 0o644


# ---------------------------------------------------------------- aepipe model files
def test_score_and_explain_an_aepipe_model_file(tmp_path, table_csv):
    import aepipe
    from aepipe import Autoencoder
    from aepipe.scoring import score_frame

    frame = pd.read_csv(table_csv)
    features = frame.drop(columns=["record_id", "label"])
    model = Autoencoder(max_epochs=2, random_state=0).fit(features)
    path = aepipe.save(model, tmp_path / "model.aepipe")
    out = tmp_path / "scores.csv"
    result = invoke("score", "--model", path, "--data", table_csv, "--out", out,
                    "--id-column", "record_id", "--drop-column", "label", "--chunk-size", "64",
                    "--no-progress")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    expected = score_frame(model, features)
    np.testing.assert_allclose(scores["anomaly_score"], expected["anomaly_score"], rtol=1e-12)
    assert scores["top1_column"].tolist() == expected["top1_column"].tolist()

    result = invoke("explain", "--model", path, "--data", table_csv, "--id-column",
                    "record_id", "--drop-column", "label", "--rows", "2")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 3

    bad = frame.astype({"amount": object})
    bad.loc[7, "amount"] = "n/a"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = invoke("score", "--model", path, "--data", tmp_path / "bad.csv", "--out", out,
                    "--id-column", "record_id", "--drop-column", "label")
    assert_one_line_error(result, match="amount")


def test_a_windowed_model_file_scores_the_same_in_chunks_and_on_dask(tmp_path):
    import aepipe
    from aepipe.datasets import make_sensor_stream
    from aepipe.sensor import WindowedPCA

    stream = make_sensor_stream(240, 3, n_anomalies=2, random_state=0).X.reset_index(drop=True)
    path = aepipe.save(WindowedPCA(width=16).fit(stream.iloc[:120]), tmp_path / "sensor.aepipe")
    data = tmp_path / "stream.csv"
    stream.to_csv(data, index=False)
    whole = aepipe.load(path).anomaly_score(stream)
    runs = [["--chunk-size", "7"]]
    if importlib.util.find_spec("distributed") is not None:
        runs.append(["--scheduler", "synchronous"])
    for options in runs:
        out = tmp_path / "scores.csv"
        result = invoke("score", "--model", path, "--data", data, "--out", out, "--top-k", "0",
                        "--no-progress", *options)
        assert result.exit_code == 0, result.output
        np.testing.assert_allclose(pd.read_csv(out)["anomaly_score"], whole, rtol=1e-9)


def test_a_many_series_model_scores_in_chunks_when_each_series_is_together(tmp_path):
    import aepipe
    from aepipe.datasets import make_sensor_stream
    from aepipe.sensor import WindowedPCA

    parts = [make_sensor_stream(150, 3, n_anomalies=1, random_state=k).X.reset_index(drop=True)
             .assign(pump=name, ts=pd.date_range("2024-01-01", periods=150, freq="min")
                     .astype(str))
             for k, name in enumerate(["p1", "p2", "p3"])]
    fleet = pd.concat(parts, ignore_index=True)
    # The time and series columns are read from the file though they are not features.
    model = WindowedPCA(width=8, series_column="pump", time_column="ts").fit(fleet)
    path = aepipe.save(model, tmp_path / "fleet.aepipe")
    data = tmp_path / "fleet.csv"
    fleet.to_csv(data, index=False)
    out = tmp_path / "scores.csv"
    result = invoke("score", "--model", path, "--data", data, "--out", out, "--top-k", "0",
                    "--no-progress", "--chunk-size", "11")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(pd.read_csv(out)["anomaly_score"], model.anomaly_score(fleet),
                               rtol=1e-9)
    # Rows of the series interleaved: chunk context would mix series, so it is refused.
    fleet.sort_index(key=lambda index: index % 150, kind="stable").to_csv(data, index=False)
    result = invoke("score", "--model", path, "--data", data, "--out", out, "--top-k", "0",
                    "--no-progress", "--chunk-size", "11")
    assert_one_line_error(result, code=2, match="sort the file by the series column")
    if importlib.util.find_spec("distributed") is not None:
        # On Dask the rows are grouped by series first: each series scores whole.
        interleaved = pd.read_csv(data)
        result = invoke("score", "--model", path, "--data", data, "--out", out,
                        "--scheduler", "synchronous", "--top-k", "0")
        assert result.exit_code == 0, result.output
        scores = pd.read_csv(out)
        np.testing.assert_array_equal(scores["row"], np.arange(len(interleaved)))
        np.testing.assert_allclose(scores["anomaly_score"], model.anomaly_score(interleaved),
                                   rtol=1e-9)


def test_fit_sets_the_alarm_limit_from_the_command_line(tmp_path, table_csv, config_file):
    import re

    result = invoke("fit", "--pipeline", config_file, "--data", table_csv,
                    "--drop-column", "record_id", "--drop-column", "label",
                    "--contamination", "0.1")
    assert result.exit_code == 0, result.output
    rate = float(re.search(r"train_anomaly_rate=([0-9.]+)", result.stderr).group(1))
    assert rate == pytest.approx(0.1, abs=0.02)
    result = invoke("fit", "--pipeline", config_file, "--data", table_csv,
                    "--drop-column", "record_id", "--drop-column", "label",
                    "--threshold", "pot")  # tabular detectors take threshold= too (#14)
    assert result.exit_code == 0, result.output
    sensor = tmp_path / "sensor.json"
    sensor.write_text(json.dumps({"steps": [{"estimator": "WindowedPCA",
                                             "params": {"width": 4}}]}))
    result = invoke("fit", "--pipeline", sensor, "--data", table_csv,
                    "--drop-column", "record_id", "--contamination", "0.1")
    assert_one_line_error(result, code=2, match="--contamination does not apply to WindowedPCA")
    result = invoke("fit", "--pipeline", sensor, "--data", table_csv,
                    "--drop-column", "record_id", "--threshold", "nonsense")
    assert_one_line_error(result, code=2, match="not a threshold rule")
    search = tmp_path / "search.json"
    search.write_text(json.dumps(TINY_SEARCH))
    result = invoke("fit", "--pipeline", search, "--data", table_csv, "--label-column",
                    "label", "--contamination", "0.1")
    assert_one_line_error(result, code=2, match="not a search config")


def test_the_command_line_limit_replaces_the_configs(tmp_path, table_csv):
    """--threshold over a config's contamination (and back) fits; both flags are refused."""
    import re

    config = tmp_path / "pca.json"
    config.write_text(json.dumps({"steps": [{"estimator": "PCADetector",
                                             "params": {"contamination": 0.05}}]}))
    columns = ["--drop-column", "record_id", "--drop-column", "label"]
    result = invoke("fit", "--pipeline", config, "--data", table_csv, *columns,
                    "--threshold", "tukey_fence")
    assert result.exit_code == 0, result.output
    config.write_text(json.dumps({"steps": [{"estimator": "PCADetector",
                                             "params": {"threshold": "pot"}}]}))
    result = invoke("fit", "--pipeline", config, "--data", table_csv, *columns,
                    "--contamination", "0.2")
    assert result.exit_code == 0, result.output
    rate = float(re.search(r"train_anomaly_rate=([0-9.]+)", result.stderr).group(1))
    assert rate == pytest.approx(0.2, abs=0.02)
    result = invoke("fit", "--pipeline", config, "--data", table_csv, *columns,
                    "--contamination", "0.2", "--threshold", "pot")
    assert_one_line_error(result, code=2, match="both set the alarm limit; give one of them")


def test_serve_help_says_which_models_it_serves():
    text = " ".join(invoke("serve", "--help").output.split())
    assert "cannot serve a file written by aepipe.save" in text


def test_subpackages_are_attributes_after_a_plain_import():
    code = "import aepipe; print(aepipe.pipelines.build_from_config.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "build_from_config"


def test_model_file_errors_are_one_line(tmp_path):
    import aepipe
    from aepipe import Autoencoder

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 3)), columns=list("abc"))
    path = aepipe.save(Autoencoder(max_epochs=1, random_state=0).fit(X), tmp_path / "m.aepipe")
    X.to_csv(tmp_path / "x.csv", index=False)
    result = invoke("serve", "--model", path, "--dry-run")
    assert_one_line_error(result, code=2, match="aepipe model file")
    path.write_bytes(path.read_bytes()[:200])  # truncated
    result = invoke("score", "--model", path, "--data", tmp_path / "x.csv", "--out",
                    tmp_path / "s.csv")
    assert_one_line_error(result, match="m.aepipe")


@pytest.mark.parametrize("link", ["same", "relative", "symlink", "hardlink"])
def test_score_never_writes_over_its_input(tmp_path, table_csv, fitted_model, link, monkeypatch):
    before = table_csv.read_bytes()
    if link == "same":
        out = table_csv
    elif link == "relative":
        monkeypatch.chdir(tmp_path)
        out = Path("sub") / ".." / table_csv.name
        (tmp_path / "sub").mkdir()
    elif link == "symlink":
        out = tmp_path / "scores.csv"
        out.symlink_to(table_csv)
    else:
        out = tmp_path / "scores.csv"
        os.link(table_csv, out)
    result = invoke("score", "--model", fitted_model, "--data", table_csv, "--out", out,
                    "--id-column", "record_id", "--drop-column", "label")
    assert_one_line_error(result, code=2, match="would destroy the input")
    assert table_csv.read_bytes() == before
    result = invoke("explain", "--model", fitted_model, "--data", table_csv, "--out", out,
                    "--id-column", "record_id", "--drop-column", "label")
    assert_one_line_error(result, code=2, match="would destroy the input")
    assert table_csv.read_bytes() == before


def test_score_refuses_outputs_that_collide_with_the_model_or_each_other(tmp_path, table_csv):
    import aepipe
    from aepipe import Autoencoder

    features = pd.read_csv(table_csv).drop(columns=["record_id", "label"])
    path = aepipe.save(Autoencoder(max_epochs=1, random_state=0).fit(features),
                       tmp_path / "model.aepipe")
    saved = path.read_bytes()
    result = invoke("score", "--model", path, "--data", table_csv, "--out", path,
                    "--id-column", "record_id", "--drop-column", "label")
    assert_one_line_error(result, code=2)  # refused (here already by its suffix)
    assert path.read_bytes() == saved
    out = tmp_path / "scores.csv"
    result = invoke("score", "--model", path, "--data", table_csv, "--out", out,
                    "--id-column", "record_id", "--drop-column", "label",
                    "--on-error", "skip", "--rejected", out)
    assert_one_line_error(result, code=2, match="--out and --rejected both name")
    result = invoke("score", "--model", path, "--data", table_csv, "--out", out,
                    "--id-column", "record_id", "--drop-column", "label",
                    "--on-error", "skip", "--rejected", table_csv)
    assert_one_line_error(result, code=2, match="--rejected")
    assert not out.exists()


def test_a_sensor_config_reads_command_channels_as_context(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"t": np.arange(n),
                          "pressure": np.sin(np.arange(n) / 10.0) + 0.05 * rng.normal(size=n),
                          "cmd": (rng.random(n) < 0.05).astype(float)})
    data = tmp_path / "stream.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "sensor.json"
    config.write_text(json.dumps({"steps": [{"estimator": "WindowedPCA", "params": {
        "width": 8, "context_channels": ["cmd"]}}]}))
    fitted = invoke("fit", "--pipeline", config, "--data", data, "--drop-column", "t")
    assert fitted.exit_code == 0, fitted.output
    out = tmp_path / "scores.csv"
    result = invoke("score", "--model", fitted.stdout.strip().splitlines()[-1], "--data", data,
                    "--out", out, "--id-column", "t", "--top-k", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert (scores["top1_column"] == "pressure").all()
    assert (scores["top2_score"] == 0).all()  # the command channel is read, never scored
    config.write_text(json.dumps({"steps": [{"estimator": "WindowedPCA", "params": {
        "width": 8, "context_channels": ["command"]}}]}))
    result = invoke("fit", "--pipeline", config, "--data", data, "--drop-column", "t")
    assert_one_line_error(result, match="context_channels names 'command', which is not a channel")
