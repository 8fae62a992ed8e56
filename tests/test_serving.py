"""End to end: the real ``mlflow models serve`` on a loopback port scores like Python does."""

import re
import socket

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from aepipe.datasets import make_mixed_table
from aepipe.estimators import Autoencoder, PCADetector
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


# ------------------------------------------------------------------ boolean and extra columns
@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A logged mixed-table model (booleans is_online, has_discount), loaded as MLflow serves it."""
    from aepipe.tracking import load_model

    X = make_mixed_table(120, random_state=0).X
    X = X.astype({c: object for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)})
    store = tmp_path_factory.mktemp("mixed-store")
    detector = Autoencoder(max_epochs=2, batch_size=32, random_state=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        run = track_fit(detector, X, tracking_uri=f"sqlite:///{store}/mlflow.db")
    return run, load_model(run.model_uri, tracking_uri=run.tracking_uri), detector, X


def _split(X, **values):
    """``X``'s first row as a dataframe_split payload, ``values`` set (or added) as sent."""
    import json

    payload = json.loads(X.iloc[:1].to_json(orient="split", index=False))
    row = dict(zip(payload["columns"], payload["data"][0]), **values)
    return {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}


def _invoke(model, payload):
    """(HTTP status, body) of MLflow's scoring server answering ``payload``, in process."""
    import json

    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        answer = scoring_server.invocations(json.dumps(payload), "application/json", model,
                                            model.metadata.get_input_schema())
    except MlflowException as exc:  # what the server's handler turns into the response
        return exc.get_http_status_code(), {"message": exc.message}
    return answer.status, json.loads(answer.response)


def _score_of(detector, X, **values):
    return score_frame(detector, X.iloc[:1].assign(**values))["anomaly_score"].iloc[0]


@pytest.mark.parametrize("value", ["no", "yes", "maybe", 2, 0.5, -1, None, ""],
                         ids=repr)
def test_a_non_boolean_in_a_boolean_column_is_a_4xx_naming_it(mixed, value):
    # MLflow's server cast these with astype(bool) before the model saw them:
    # "no", 2 and 0.5 were scored as True, null and "" as False (HTTP 200).
    _, model, _, X = mixed
    status, body = _invoke(model, _split(X, is_online=value))
    assert 400 <= status < 500, body
    assert re.search(rf"Column 'is_online' is boolean but has the value .*{re.escape(repr(value))}",
                     body["message"]), body["message"]


@pytest.mark.parametrize("value, meaning", [
    (True, True), (False, False), (1, True), (0, False),
    ("true", True), ("false", False), ("False", False), ("0", False),
], ids=repr)
def test_a_boolean_column_reads_what_aepipe_reads_as_a_boolean(mixed, value, meaning):
    _, model, detector, X = mixed
    status, body = _invoke(model, _split(X, is_online=value, has_discount=value))
    assert status == 200, body
    assert body["predictions"][0]["anomaly_score"] == pytest.approx(
        _score_of(detector, X, is_online=meaning, has_discount=meaning), rel=1e-12)


def test_boolean_inputs_are_typed_any_so_mlflow_does_not_cast_them(mixed):
    _, model, _, X = mixed
    inputs = model.metadata.get_input_schema()
    types = dict(zip(inputs.input_names(), (repr(t) for t in inputs.input_types())))
    assert list(types) == list(X.columns)
    assert [c for c, t in types.items() if t == "Any"] == ["is_online", "has_discount"]
    assert types["amount"] == "double" and types["segment"] == "string"


def test_python_predict_scores_boolean_frames_as_in_memory(mixed):
    _, model, detector, X = mixed
    pd.testing.assert_frame_equal(model.predict(X.iloc[:10]), score_frame(detector, X.iloc[:10]))
    with pytest.raises(Exception, match="Column 'is_online' is boolean but has the value 'no'"):
        model.predict(X.iloc[:2].astype({"is_online": object}).assign(is_online=["no", True]))


def test_an_extra_column_is_dropped_by_mlflow_and_refused_by_the_python_model(mixed):
    """As documented: MLflow's schema enforcement drops an extra column before the
    model sees it; aepipe score and score_dask call the Python model, which refuses it."""
    from aepipe.tracking._model import InvalidModelInputError

    _, model, detector, X = mixed
    status, body = _invoke(model, _split(X, foo=1.0))
    assert status == 200, body
    assert body["predictions"][0]["anomaly_score"] == pytest.approx(_score_of(detector, X))
    with pytest.raises(InvalidModelInputError, match=r"Unexpected column\(s\) \['foo'\]"):
        model.unwrap_python_model().predict(None, X.iloc[:1].assign(foo=1.0))


def test_served_boolean_column_refuses_text_and_reads_false(mixed):
    """The real server: "false" is False (it was scored as True), "maybe" a 400."""
    run, _, detector, X = mixed
    with served_model(run.model_uri, tracking_uri=run.tracking_uri, startup_timeout=45) as url:
        status, body = post_json(f"{url}/invocations", _split(X, is_online="false"))
        assert status == 200, body
        assert body["predictions"][0]["anomaly_score"] == pytest.approx(
            _score_of(detector, X, is_online=False), rel=1e-12)
        status, body = post_json(f"{url}/invocations", _split(X, is_online="maybe"))
    assert 400 <= status < 500, body
    assert "Column 'is_online' is boolean but has the value 'maybe'" in body["message"]


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
