"""Option values and inputs the CLI refuses with one ``Error: ...`` line, before any work.

Each test drives a bug found by QA: a search over labels that cannot be scored, a
--scheduler that is not an address, --method hnsw without FAISS, a negative --seed,
a demo that replaced a user's data.csv, and aepipe.save given a directory.
"""

import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import aepipe
from aepipe import PCADetector
from aepipe.cli import cli
from aepipe.datasets import make_mixed_table


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, code, match):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and match in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def table_csv(tmp_path):
    frame = make_mixed_table(100, random_state=0).X
    frame.insert(0, "record_id", np.arange(100))
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- labels a search cannot score
def test_compare_refuses_labels_of_one_class_before_fitting(tmp_path, table_csv):
    frame = pd.read_csv(table_csv).assign(is_anomaly=0)
    frame.to_csv(tmp_path / "oneclass.csv", index=False)
    result = invoke("compare", "--data", tmp_path / "oneclass.csv", "--label-column",
                    "is_anomaly", "--drop-column", "record_id", "--max-epochs", 1, "--cv", 2)
    assert_one_line_error(result, 1, "all 100 labels are 0 (normal)")
    assert "Best:" not in result.stdout
    assert not (tmp_path / "mlflow.db").exists()  # nothing fitted, nothing logged


def test_a_leaderboard_of_nan_scores_names_no_best_model(tmp_path, table_csv, monkeypatch):
    # The check above prevents it; should NaN scores come anyway, no "Best:" is picked.
    monkeypatch.setattr("aepipe.cli._main._check_labelled_folds", lambda *a, **k: None)
    pd.read_csv(table_csv).assign(is_anomaly=0).to_csv(tmp_path / "oneclass.csv", index=False)
    result = invoke("compare", "--data", tmp_path / "oneclass.csv", "--label-column",
                    "is_anomaly", "--drop-column", "record_id", "--max-epochs", 1, "--cv", 2)
    assert_one_line_error(result, 1, "No candidate has a score for anomaly_roc_auc")
    assert "Best:" not in result.stdout


def test_demo_refuses_more_folds_than_anomalies(tmp_path):
    result = invoke("demo", "--quick", "--no-progress", "--n-samples", 100, "--cv", 50)
    assert_one_line_error(result, 2, "Invalid value for '--cv'")
    line = result.stderr.strip()
    assert "the 5 labelled anomalies of the 100 records cannot fill 50 folds" in line
    assert "Use --cv " in line
    assert not (tmp_path / "aepipe-demo").exists()


# ---------------------------------------------------------------- --scheduler
@pytest.mark.parametrize("value", ["bogus", "tcp://127.0.0.1", "localhost:99999", "http://x:1"])
def test_scheduler_that_is_not_an_address_is_refused_at_once(table_csv, value):
    result = invoke("score", "--model", "models:/m-1", "--data", table_csv, "--out", "o.csv",
                    "--scheduler", value)
    assert_one_line_error(result, 2, "Invalid value for '--scheduler'")
    assert "threads, processes, synchronous" in result.stderr
    assert "tcp://host:port" in result.stderr


@pytest.mark.parametrize("value", ["threads", "processes", "synchronous", "tcp://127.0.0.1:8786",
                                   "scheduler:8786", "tls://[::1]:8786"])
def test_scheduler_values_dask_accepts_pass(value):
    from aepipe.cli._main import _check_scheduler

    assert _check_scheduler(None, None, value) == value


# ---------------------------------------------------------------- --method hnsw without faiss
def test_hnsw_without_faiss_is_a_one_line_usage_error(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=list("abc"))
    frame.to_csv(tmp_path / "library.csv", index=False)
    frame.head(5).to_csv(tmp_path / "queries.csv", index=False)
    model = aepipe.save(PCADetector(n_components=2).fit(frame), tmp_path / "pca.aepipe")
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` fails, as without it
    result = invoke("neighbors", "--model", model, "--library", tmp_path / "library.csv",
                    "--data", tmp_path / "queries.csv", "--out", tmp_path / "nb.csv",
                    "--method", "hnsw", "-k", 2)
    assert_one_line_error(result, 2, "--method hnsw needs FAISS")
    assert "--method exact" in result.stderr
    assert not (tmp_path / "nb.csv").exists()


# ---------------------------------------------------------------- --seed
@pytest.mark.parametrize("seed", [-1, 2**32])
@pytest.mark.parametrize("command", ["demo", "compare"])
def test_seed_out_of_numpys_range_is_a_usage_error(table_csv, command, seed):
    options = (["--quick"] if command == "demo" else
               ["--data", table_csv, "--drop-column", "record_id", "--max-epochs", 1])
    result = invoke(command, *options, "--seed", seed)
    assert_one_line_error(result, 2, "Invalid value for '--seed'")


# ---------------------------------------------------------------- demo --out-dir
def test_demo_keeps_a_users_data_csv_and_reruns_over_its_own(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.csv").write_text("a,b\n1,2\n")
    quick = ["demo", "--quick", "--no-progress", "--n-samples", 100, "--max-epochs", 1]
    result = invoke(*quick, "--out-dir", mine)
    assert_one_line_error(result, 2, "already holds data.csv")
    assert "--overwrite" in result.stderr
    assert (mine / "data.csv").read_text() == "a,b\n1,2\n"

    assert invoke(*quick, "--out-dir", mine, "--overwrite").exit_code == 0
    assert "is_anomaly" in (mine / "data.csv").read_text()
    again = invoke(*quick, "--out-dir", mine)  # the demo's own files: replaced
    assert again.exit_code == 0, again.output


# ---------------------------------------------------------------- aepipe.save to a directory
def test_save_to_a_directory_names_it_and_asks_for_a_file(tmp_path):
    detector = PCADetector(n_components=1).fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(IsADirectoryError, match="is a directory; .*give a file name") as info:
        aepipe.save(detector, tmp_path)
    assert repr(str(tmp_path)) in str(info.value)
    assert ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
