"""Serving a logged model with ``mlflow models serve`` (and a helper that runs it)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

logger = logging.getLogger(__name__)


def serve_command(model_uri: str, *, host: str = "127.0.0.1", port: int = 5001) -> list[str]:
    """The argv that serves ``model_uri`` over REST in the current environment.

    Equivalent to ``mlflow models serve -m <uri> -h <host> -p <port>
    --env-manager local``, run with this Python so the served model sees the
    same aepipe, torch and scikit-learn. ``runs:/`` and ``models:/`` URIs are
    resolved against ``MLFLOW_TRACKING_URI`` in the server's environment, and
    the environment's ``bin`` directory must be on ``PATH`` (MLflow starts
    ``uvicorn`` by name), as it is in an activated virtual environment.

    Parameters
    ----------
    model_uri : str
    host : str, default="127.0.0.1"
        Loopback by default; binding to other interfaces is the caller's choice.
    port : int, default=5001
        Not 5000, where ``mlflow ui`` listens by default.

    Returns
    -------
    argv : list of str
    """
    return [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", str(model_uri), "-h", str(host), "-p", str(int(port)),
        "--env-manager", "local",
    ]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def post_json(url: str, payload, timeout: float = 30.0) -> tuple[int, dict | str]:
    """POST ``payload`` as JSON; return (HTTP status, decoded body)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


@contextmanager
def served_model(model_uri: str, *, tracking_uri: str | None = None, host: str = "127.0.0.1",
                 port: int | None = None, startup_timeout: float = 60.0):
    """Run ``mlflow models serve`` for the duration of a ``with`` block.

    Yields the base URL (``http://host:port``). The server runs in its own
    process group, which is terminated (then killed) on exit, whatever happens.
    """
    port = port or free_port(host)
    env = dict(os.environ)
    # mlflow execs `uvicorn` by name: the environment's bin directory must be on PATH.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    # A file, not a pipe, for the server's log: an unread pipe fills and blocks the server.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        serve_command(model_uri, host=host, port=port), env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"mlflow models serve exited with {process.returncode}:\n{err}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow models serve did not answer on {url} "
                                   f"within {startup_timeout:.0f} s")
            time.sleep(0.25)
        yield url
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    """Terminate the server's whole process group and wait until none of it is left.

    ``mlflow models serve`` starts uvicorn workers in the same group; they can
    outlive the parent for a moment and keep the port, so waiting for the
    parent alone is not enough.
    """
    group = process.pid
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reap the parent so the group can empty
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
    process.poll()
