"""End to end: the real ``mlflow models serve`` on a loopback port scores like Python does."""

import re
import socket

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from aepipe.estimators import PCADetector
from aepipe.scoring import score_frame

pytest.importorskip("mlflow")

from aepipe.tracking import track_fit  # noqa: E402
from aepipe.tracking._serve import free_port, post_json, served_model  # noqa: E402

pytestmark = pytest.mark.e2e

COLUMNS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A tracked PCA pipeline served for the whole module; always stopped at the end."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(100, 4)) @ rng.normal(size=(4, 4)), columns=COLUMNS)
    store = tmp_path_factory.mktemp("serve-store")
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCADetector(n_components=2))])
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        run = track_fit(pipe, X, tracking_uri=f"sqlite:///{store}/mlflow.db")
    port = free_port()
    with served_model(run.model_uri, tracking_uri=run.tracking_uri, port=port,
                      startup_timeout=45) as url:
        yield url, pipe, X
    with pytest.raises(OSError):  # the server is gone
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _frame(body):
    return pd.DataFrame(body["predictions"])


@pytest.mark.parametrize("orient", ["dataframe_split", "dataframe_records"])
def test_served_scores_equal_in_memory_scores(server, orient):
    url, pipe, X = server
    new = X.iloc[:20]
    payload = new.to_dict(orient="split" if orient == "dataframe_split" else "records")
    if orient == "dataframe_split":
        payload.pop("index")
    status, body = post_json(f"{url}/invocations", {orient: payload})
    assert status == 200, body
    served, expected = _frame(body), score_frame(pipe, new).reset_index(drop=True)
    np.testing.assert_array_equal(served["anomaly_score"], expected["anomaly_score"])
    np.testing.assert_array_equal(served["predicted_anomaly"], expected["predicted_anomaly"])
    np.testing.assert_array_equal(served["top1_column"], expected["top1_column"])
    np.testing.assert_array_equal(served["top1_score"], expected["top1_score"])


@pytest.mark.parametrize("records, pattern", [
    ([{"a": 1.0, "b": 2.0, "c": 3.0}], r"missing inputs \['d'\]"),
    ([{"a": 1.0, "b": "abc", "c": 3.0, "d": 4.0}], r"column b .*'abc'"),
    ([{"a": None, "b": 2.0, "c": 3.0, "d": 4.0}], r"missing value \(NaN\) at row 0"),
], ids=["missing-column", "string-in-numeric-column", "null-value"])
def test_malformed_payload_is_a_readable_4xx(server, records, pattern):
    url, _, _ = server
    status, body = post_json(f"{url}/invocations", {"dataframe_records": records})
    assert 400 <= status < 500, body
    assert re.search(pattern, body["message"]), body["message"]
    assert "Traceback" not in body["message"]


def test_invalid_json_is_a_4xx(server):
    url, _, _ = server
    status, _ = post_json(f"{url}/invocations", b"{not json")
    assert 400 <= status < 500


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (Linux /proc)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if text.encode() in handle.read().replace(b"\0", b" "):
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not __import__("os").path.isdir("/proc"), reason="needs Linux /proc")
@pytest.mark.parametrize("sig, code", [
    ("SIGTERM", 0), pytest.param("SIGINT", 130, marks=pytest.mark.slow)])
def test_a_signal_to_aepipe_serve_stops_the_whole_server(tmp_path, sig, code):
    """kill -TERM (or Ctrl-C) on `aepipe serve` leaves no server process and frees the port."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 4)), columns=COLUMNS)
    store = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        run = track_fit(PCADetector(n_components=2), X, tracking_uri=store)
    port = free_port()
    script = Path(sys.executable).with_name("aepipe")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "aepipe.cli"]
    server = subprocess.Popen([*argv, "serve", "--model", run.model_uri, "--port", str(port),
                               "--tracking-uri", store], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = f"-p {port} --env-manager local"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start within 60 s"
                time.sleep(0.25)
        assert _processes_mentioning(marker)
        server.send_signal(getattr(signal, sig))
        assert server.wait(timeout=40) == code, server.stderr.read().decode()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert _processes_mentioning(marker) == []
    finally:
        if server.poll() is None:
            server.kill()
        for pid in _processes_mentioning(marker):
            __import__("os").kill(pid, signal.SIGKILL)
