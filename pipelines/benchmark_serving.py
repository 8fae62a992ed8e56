"""Serving under load: the real ``mlflow models serve`` on loopback, timed.

Fits a small Autoencoder pipeline, tracks it in a throw-away SQLite store,
serves the logged model with ``mlflow models serve --env-manager local`` on a
free 127.0.0.1 port, then measures:

1. single-record latency, sequential (``--single`` requests, default 200): p50/p99;
2. ``--load`` requests (default 2,000) at ``--concurrency`` (default 8): errors, p50/p99;
3. ``--malformed`` bad requests (default 200): how many got a 4xx, then that
   the server still answers /ping and a valid request;
4. ``--mixed`` requests (default 1,000; one in four malformed) at
   ``--concurrency`` while the server is stopped and started again on the same
   port a third of the way through: every good request must end in a 200 and
   every malformed one in a 4xx. A request refused while the server is down
   is retried (every 0.25 s, within the deadline); the table reports those
   refusals, the downtime and the latencies of the answered requests.

Every request has a timeout and the run has an overall deadline; the server is
always stopped. Loopback only; nothing leaves the machine.

Usage::

    python pipelines/benchmark_serving.py [--single 200] [--load 2000] [--concurrency 8]
                                          [--malformed 200] [--mixed 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

REQUEST_TIMEOUT = 30.0
COLUMNS = [f"sensor_{j}" for j in range(8)]


class Client:
    """One keep-alive HTTP connection per thread."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.local = threading.local()

    def post(self, body: bytes) -> tuple[int, float]:
        for attempt in range(2):  # one reconnect if the server closed an idle connection
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT)
            start = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                return response.status, time.perf_counter() - start
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self.local.conn = None
                if attempt:
                    return 599, time.perf_counter() - start
        raise AssertionError("unreachable")


def _malformed_bodies(record: dict) -> list[bytes]:
    missing = {k: v for k, v in record.items() if k != COLUMNS[0]}
    text = {**record, COLUMNS[1]: "not-a-number"}
    null = {**record, COLUMNS[2]: None}
    return [
        json.dumps({"dataframe_records": [missing]}).encode(),
        json.dumps({"dataframe_records": [text]}).encode(),
        json.dumps({"dataframe_records": [null]}).encode(),
        json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0]]}}).encode(),
        b"{this is not json",
        json.dumps({"no_such_key": [record]}).encode(),
        json.dumps({"dataframe_records": []}).encode(),
        json.dumps({"dataframe_records": [{**record, COLUMNS[3]: 1e400}]}).encode()
        .replace(b"Infinity", b"1e400"),
    ]


def _percentiles(seconds) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--load", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--malformed", type=int, default=200)
    parser.add_argument("--mixed", type=int, default=1000,
                        help="good and malformed requests across a server restart")
    parser.add_argument("--deadline", type=float, default=540.0, help="seconds, whole run")
    args = parser.parse_args(argv)
    if not (0 < args.single <= 10_000 and 0 < args.load <= 50_000 and
            0 < args.concurrency <= 64 and 0 < args.malformed <= 10_000 and
            0 < args.mixed <= 50_000):
        parser.error("counts are bounded (single<=10k, load<=50k, concurrency<=64, "
                     "malformed<=10k, mixed<=50k)")
    began = time.monotonic()

    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from aepipe.estimators import Autoencoder
    from aepipe.tracking import track_fit
    from aepipe.tracking._serve import free_port, served_model

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(1000, 3)) @ rng.normal(size=(3, 8))
                     + 0.1 * rng.normal(size=(1000, 8)), columns=COLUMNS)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("ae", Autoencoder(max_epochs=10, random_state=0))])
    rows = []
    with tempfile.TemporaryDirectory(prefix="aepipe-bench-") as tmp:
        uri = f"sqlite:///{Path(tmp)}/mlflow.db"
        # Keep the artifacts in the temporary directory too (MLflow's default is ./mlruns).
        from mlflow import MlflowClient

        MlflowClient(uri).create_experiment("benchmark-serving",
                                            artifact_location=(Path(tmp) / "artifacts").as_uri())
        run = track_fit(pipe, X, experiment_name="benchmark-serving", tracking_uri=uri)
        host, port = "127.0.0.1", free_port()
        records = X.sample(200, random_state=1).to_dict(orient="records")
        bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            stack.enter_context(served_model(run.model_uri, tracking_uri=run.tracking_uri,
                                             host=host, port=port, startup_timeout=120))
            startup = time.monotonic() - started
            client = Client(host, port)
            client.post(bodies[0])  # warm-up: first request loads lazy imports

            single = [client.post(bodies[i % len(bodies)]) for i in range(args.single)]
            p50, p99 = _percentiles([t for _, t in single])
            errors = sum(status != 200 for status, _ in single)
            rows.append(("single record, sequential", args.single, errors, p50, p99, ""))

            def one(i):
                if time.monotonic() - began > args.deadline:
                    return 598, 0.0
                return client.post(bodies[i % len(bodies)])

            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                loaded = list(pool.map(one, range(args.load)))
            wall = time.perf_counter() - start
            p50, p99 = _percentiles([t for _, t in loaded])
            errors = sum(status != 200 for status, _ in loaded)
            rows.append((f"single record, concurrency {args.concurrency}", args.load, errors,
                         p50, p99, f"{args.load / wall:.0f} req/s"))

            bad = _malformed_bodies(records[0])
            answered = [client.post(bad[i % len(bad)]) for i in range(args.malformed)]
            not_4xx = sum(not 400 <= status < 500 for status, _ in answered)
            p50, p99 = _percentiles([t for _, t in answered])
            with http_get(host, port, "/ping") as ping_status:
                healthy = ping_status == 200 and client.post(bodies[0])[0] == 200
            rows.append(("malformed (8 kinds)", args.malformed, not_4xx, p50, p99,
                         f"all 4xx: {not_4xx == 0}; healthy after: {healthy}"))

            # 4. Good and malformed requests while the server restarts on the same port.
            refused = [0]
            done = [0]
            lock = threading.Lock()

            def mixed(i):
                body, good = ((bad[i % len(bad)], False) if i % 4 == 3
                              else (bodies[i % len(bodies)], True))
                while True:
                    status, seconds = client.post(body)
                    if status != 599 or time.monotonic() - began > args.deadline:
                        break
                    with lock:
                        refused[0] += 1
                    time.sleep(0.25)  # the server is down: wait for it
                with lock:
                    done[0] += 1
                return status, seconds, good

            def restart():
                while done[0] < args.mixed // 3:
                    time.sleep(0.05)
                down = time.monotonic()
                stack.close()  # the whole server process group, port released
                stack.enter_context(served_model(run.model_uri, tracking_uri=run.tracking_uri,
                                                 host=host, port=port, startup_timeout=120))
                return time.monotonic() - down

            with ThreadPoolExecutor(args.concurrency + 1) as pool:
                restarted = pool.submit(restart)
                answers = list(pool.map(mixed, range(args.mixed)))
                downtime = restarted.result()
            wrong = sum((status != 200) if good else not 400 <= status < 500
                        for status, _, good in answers)
            p50, p99 = _percentiles([t for status, t, _ in answers if status != 599])
            rows.append(("mixed 3:1, server restarted", args.mixed, wrong, p50, p99,
                         f"down {downtime:.1f} s, {refused[0]} refused connections retried"))

    print(f"Model: StandardScaler + Autoencoder (8 columns, 1000 rows, 10 epochs); "
          f"server startup {startup:.1f} s; loopback {host}")
    header = f"{'phase':<30} {'requests':>8} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}  note"
    print(header)
    print("-" * len(header))
    for phase, n, errors, p50, p99, note in rows:
        print(f"{phase:<30} {n:>8} {errors:>7} {p50:>8.1f} {p99:>8.1f}  {note}")
    print("(errors: non-200 answers; for malformed requests, answers that were not 4xx)")
    print("(mixed: good requests not answered 200 plus malformed ones not answered 4xx)")
    ok = all(row[2] == 0 for row in rows) and healthy
    return 0 if ok else 1


class http_get:
    """GET a path; a context manager yielding the status (0 when unreachable)."""

    def __init__(self, host, port, path):
        self.conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        self.path = path

    def __enter__(self):
        try:
            self.conn.request("GET", self.path)
            response = self.conn.getresponse()
            response.read()
            return response.status
        except (http.client.HTTPException, OSError):
            return 0

    def __exit__(self, *exc):
        self.conn.close()


if __name__ == "__main__":
    sys.exit(main())
