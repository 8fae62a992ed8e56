"""The fresh-machine walk-through (docs/walkthrough.md, the README), end to end, as a user
runs it: real processes, the console script, a REST server and an MLflow tracking server.

demo -> fit the recommended detector on a CSV file -> explain -> serve -> score over REST
-> the MLflow UI's server answers with the runs (through its REST API).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from aepipe.tracking._serve import _stop, free_port, post_json

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # about two minutes on one core


def _aepipe(*args, cwd, timeout=600):
    script = Path(sys.executable).with_name("aepipe")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "aepipe.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*argv, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _wait_for(url: str, process: subprocess.Popen, log, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"{process.args} exited:\n{log.read().decode()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"nothing answered on {url}"
        time.sleep(0.5)


def _start(argv, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return process, log


def test_walkthrough_from_demo_to_a_served_model_and_the_mlflow_ui(tmp_path):
    # 1-2. The demo (its quick settings) writes the data the next steps use.
    _aepipe("demo", "--quick", "--no-progress", cwd=tmp_path)
    data = tmp_path / "aepipe-demo" / "data.csv"
    assert data.is_file() and (tmp_path / "mlflow.db").is_file()

    # 3. Fit the recommended detector: the model URI alone on stdout.
    fitted = _aepipe("--threads", "1", "fit", "--data", data, "--id-column", "record_id",
                     "--label-column", "is_anomaly", cwd=tmp_path)
    model = fitted.stdout.strip()
    assert model.startswith("models:/") and "\n" not in model
    assert "AutoencoderEnsemble" in fitted.stderr or "train_roc_auc=" in fitted.stderr

    # 4. Explain.
    explained = _aepipe("explain", "--model", model, "--data", data, "--id-column",
                        "record_id", "--drop-column", "is_anomaly", "--rows", "5", cwd=tmp_path)
    lines = explained.stdout.strip().splitlines()
    assert lines[0].startswith("The 5 most anomalous of 300 records")
    assert len(lines) == 6 and all(line.startswith("record_id=") for line in lines[1:])

    # 5. Serve with `aepipe serve` on a free port (the walk-through uses the default, 5001).
    port = free_port()
    server, server_log = _start(
        [str(Path(sys.executable).with_name("aepipe")), "serve", "--model", model,
         "--port", str(port)], tmp_path)
    try:
        _wait_for(f"http://127.0.0.1:{port}/ping", server, server_log)
        # 6. Score over REST: two records, the second far out of range.
        records = pd.read_csv(data).drop(columns=["record_id", "is_anomaly"]).head(2)
        records.loc[1, "balance"] = 99_999.0
        payload = {"dataframe_split": json.loads(records.to_json(orient="split", index=False))}
        status, reply = post_json(f"http://127.0.0.1:{port}/invocations", payload, timeout=120)
        assert status == 200, reply
        predictions = pd.DataFrame(reply["predictions"])
        assert list(predictions.columns[:2]) == ["anomaly_score", "predicted_anomaly"]
        assert predictions["anomaly_score"][1] > predictions["anomaly_score"][0]
        assert predictions["top1_column"][1] == "balance"
        assert bool(predictions["predicted_anomaly"][1])
        server.send_signal(signal.SIGTERM)  # aepipe serve stops its server group, exit 0
        assert server.wait(timeout=60) == 0
    finally:
        _stop(server)
        server_log.close()

    # 7. The MLflow UI's server, on the same store, lists the runs through its REST API.
    ui_port = free_port()
    ui, ui_log = _start([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                         f"sqlite:///{tmp_path / 'mlflow.db'}", "--host", "127.0.0.1",
                         "--port", str(ui_port), "--workers", "1"], tmp_path)
    try:
        base = f"http://127.0.0.1:{ui_port}"
        _wait_for(f"{base}/health", ui, ui_log)
        status, found = post_json(f"{base}/api/2.0/mlflow/experiments/search",
                                  {"max_results": 10})
        assert status == 200, found
        experiment = next(e for e in found["experiments"] if e["name"] == "aepipe")
        status, runs = post_json(f"{base}/api/2.0/mlflow/runs/search",
                                 {"experiment_ids": [experiment["experiment_id"]],
                                  "max_results": 100})
        assert status == 200, runs
        tags = [{t["key"]: t["value"] for t in run["data"].get("tags", [])}
                for run in runs["runs"]]
        names = {t.get("mlflow.runName") for t in tags}
        assert "aepipe-demo" in names  # the demo's search ...
        assert "AutoencoderEnsemble" in {t.get("aepipe.detector") for t in tags}  # ... the fit
        children = [t for t in tags if "mlflow.parentRunId" in t]
        assert {"PCADetector n_components=2", "Autoencoder latent_dim=2"} <= {
            t["mlflow.runName"] for t in children}
        with urllib.request.urlopen(base, timeout=30) as page:  # the UI itself
            assert page.status == 200
    finally:
        _stop(ui)
        ui_log.close()
