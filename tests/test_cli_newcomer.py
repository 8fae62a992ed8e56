"""What a newcomer meets in the CLI: the recommended detector by default, progress on
stderr only, output names that do not clash, a serve port that is not MLflow UI's."""

import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from aepipe.cli import cli
from aepipe.datasets import make_mixed_table


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """`aepipe -v fit` with no --pipeline on a small mixed table with an id and labels."""
    folder = tmp_path_factory.mktemp("newcomer")
    data = make_mixed_table(200, random_state=0)
    frame = data.X.astype({"segment": object, "channel": object})
    frame.insert(0, "record_id", np.arange(1000, 1200))
    frame["is_anomaly"] = data.y.to_numpy()
    path = folder / "records.csv"
    frame.to_csv(path, index=False)
    uri = f"sqlite:///{folder}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = invoke("-v", "--threads", "1", "fit", "--data", path, "--id-column",
                        "record_id", "--label-column", "is_anomaly", "--tracking-uri", uri)
    assert result.exit_code == 0, result.output
    return result, uri, path


def test_fit_defaults_to_the_recommended_detector(fitted):
    result, uri, _ = fitted
    model_uri = result.stdout.strip()
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_logged_model(model_uri.removeprefix("models:/")).source_run_id
    assert client.get_run(run).data.tags["aepipe.detector"] == "AutoencoderEnsemble"


def test_fit_shows_progress_on_stderr_and_only_the_uri_on_stdout(fitted):
    result, _, _ = fitted
    assert result.stdout.strip().splitlines() == [result.stdout.strip()]
    assert result.stdout.startswith("models:/")
    # A progress bar over epochs (tqdm, unit "epoch") on stderr.
    assert re.search(r"TrimmedAutoencoderNet.*\d+/\d+.*epoch", result.stderr)
    assert "Metrics (train_ = on the training data): " in result.stderr
    assert "train_roc_auc=" in result.stderr


def test_fit_shows_no_progress_without_a_terminal_or_v(tmp_path):
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 3)), columns=list("abc"))
    frame.to_csv(tmp_path / "x.csv", index=False)
    result = invoke("fit", "--pipeline", "autoencoder", "--data", tmp_path / "x.csv")
    assert result.exit_code == 0, result.output
    assert "epoch" not in result.stderr
    assert result.stdout.strip().startswith("models:/")


def test_explain_shows_progress_per_chunk_with_v(fitted):
    result, uri, path = fitted
    model = result.stdout.strip()
    args = ["explain", "--model", model, "--data", path, "--id-column", "record_id",
            "--drop-column", "is_anomaly", "--rows", "3", "--chunk-size", "50",
            "--tracking-uri", uri]
    loud = invoke("-v", *args)
    assert loud.exit_code == 0, loud.output
    assert re.search(r"scoring: .*200", loud.stderr)
    assert "scoring" not in loud.stdout
    quiet = invoke(*args)
    assert "scoring" not in quiet.stderr
    assert quiet.stdout == loud.stdout


def test_score_writes_predicted_anomaly_and_refuses_a_clashing_id_column(fitted, tmp_path):
    result, uri, path = fitted
    model = result.stdout.strip()
    out = tmp_path / "scores.csv"
    scored = invoke("score", "--model", model, "--data", path, "--out", out, "--id-column",
                    "record_id", "--drop-column", "is_anomaly", "--tracking-uri", uri)
    assert scored.exit_code == 0, scored.output
    columns = pd.read_csv(out).columns
    assert list(columns[:3]) == ["record_id", "anomaly_score", "predicted_anomaly"]
    assert "is_anomaly" not in columns  # the input's label keeps its name when joined back

    clash = tmp_path / "clash.csv"
    pd.read_csv(path).rename(columns={"record_id": "anomaly_score"}).to_csv(clash, index=False)
    refused = invoke("score", "--model", model, "--data", clash, "--out", tmp_path / "o.csv",
                     "--id-column", "anomaly_score", "--drop-column", "is_anomaly",
                     "--tracking-uri", uri)
    assert refused.exit_code == 2
    assert "--id-column 'anomaly_score' has the name of an output column" in refused.stderr
    assert not (tmp_path / "o.csv").exists()


def test_serve_defaults_to_a_port_other_than_mlflow_uis(fitted):
    result, uri, _ = fitted
    assert "default: 5001" in invoke("serve", "--help").stdout
    dry = invoke("serve", "--model", result.stdout.strip(), "--tracking-uri", uri, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert " -p 5001 " in dry.stdout


def test_leaderboard_plot_shows_the_full_range_and_chance_levels():
    from aepipe.cli._report import leaderboard_figure

    board = pd.DataFrame({
        "model": ["Autoencoder", "PCADetector"], "params": ["latent_dim=2", ""],
        "anomaly_roc_auc": [0.996, 0.993], "anomaly_roc_auc_std": [0.003, 0.004],
        "anomaly_average_precision": [0.966, 0.848],
        "anomaly_average_precision_std": [0.02, 0.08], "fit_time_s": [3.9, 0.01],
    }, index=pd.Index([1, 2], name="rank"))
    figure = leaderboard_figure(board, anomaly_rate=0.05)
    ax = figure.axes[0]
    assert ax.get_xlim() == (0.0, 1.0)
    chance = sorted(round(line.get_xdata()[0], 3) for line in ax.get_lines()
                    if line.get_linestyle() == "--")
    assert chance == [0.05, 0.5]
    assert {"0.996", "0.848"} <= {text.get_text() for text in ax.texts}


def test_a_model_fitted_with_progress_stays_picklable():
    import pickle

    from aepipe import Autoencoder

    X = np.random.default_rng(0).normal(size=(40, 3))
    model = Autoencoder(max_epochs=1, early_stopping=False, verbose=1, random_state=0).fit(X)
    assert pickle.loads(pickle.dumps(model)).score_samples(X).shape == (40,)
