"""A real Label Studio server for the integration tests (session-scoped fixture
``label_studio``).

The server is the ``label-studio`` command of the environment running the tests (the
executable beside ``sys.executable``, else the one on PATH; ``ALCORE_LABEL_STUDIO=/path/to/
label-studio`` picks another), started as::

    label-studio start --no-browser --internal-host 127.0.0.1 --host http://127.0.0.1:PORT
        --port PORT --data-dir TMP --username ... --password ... --user-token ...

* ``--internal-host`` is the address Django binds (Label Studio's default is 0.0.0.0);
  ``--host`` only sets the URL it writes into links.
* The first user and its API token come from ``--username/--password/--user-token`` (the
  start command creates the user when the data dir has none). Label Studio 1.2x turns the
  classic ``Authorization: Token ...`` API tokens ("legacy" tokens) off for new
  organisations in favour of JWT personal access tokens; ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN
  =true`` (the ``--enable-legacy-api-token`` flag's setting, an environment variable so that
  older versions without the flag ignore it) keeps them on.
* Label Studio reads every setting from ``LABEL_STUDIO_<NAME>``, ``HEARTEX_<NAME>`` *and the
  bare ``<NAME>``*, so a stray ``HOST``, ``PORT``, ``USERNAME`` or ``DATABASE_NAME`` in the
  test's environment would reach it. The server gets a minimal environment instead: PATH,
  locale and library paths, HOME in the temporary directory, and its own settings (SQLite in
  the data dir, no analytics, no version check against pypi.org).
* If the port is taken Label Studio silently moves to the next free one, so the URL is read
  from its "Starting development server at" line rather than assumed.

Start-up, measured on the shared 2-core machine (label-studio 1.23): about 50 s on a fresh
data dir, of which about 40 s are the database migrations; 10 s on a migrated one. Every
session starts fresh (nothing cached between runs). ``ALCORE_LABEL_STUDIO_TIMEOUT`` (seconds,
default 240) bounds the wait; the failure message carries the server's log.

When label-studio is not installed the tests using the fixture are skipped, unless the
environment variable ``CI`` is set: there a missing server is a failure, since CI installs
it (the ``labelstudio`` extra).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

EXECUTABLE_ENV = "ALCORE_LABEL_STUDIO"
TIMEOUT_ENV = "ALCORE_LABEL_STUDIO_TIMEOUT"
USERNAME = "alcore-admin@example.com"
PASSWORD = "alcore-test-password"
TOKEN = "alcore0test0token0f0r0label0studio00000001"
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TEMP", "TMP",
               "SYSTEMROOT", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")
_STARTED = re.compile(r"Starting development server at (http://[^/\s]+)/")


def in_ci() -> bool:
    """Whether the environment variable CI is set (to anything but empty/0/false/no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_label_studio() -> str | None:
    """The label-studio executable to run, or None when it is not installed."""
    chosen = os.environ.get(EXECUTABLE_ENV)
    if chosen:
        return chosen if Path(chosen).is_file() else None
    sibling = Path(sys.executable).with_name("label-studio")
    if sibling.is_file():
        return str(sibling)
    return shutil.which("label-studio")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudioAPIError(AssertionError):
    """A REST call answered with an unexpected status; the message holds the body."""


@dataclass
class LabelStudioServer:
    """A running Label Studio: its URL, the first user's credentials and a small JSON
    client for its REST API (stdlib only, so the tests need no HTTP library)."""

    url: str
    token: str
    username: str
    password: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)
    startup_seconds: float = 0.0

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def request(self, method: str, path: str, payload: Any = None, *,
                params: dict | None = None, expect: tuple[int, ...] = (200, 201, 204),
                token: str | None = None, timeout: float = 60.0) -> Any:
        """One REST call; the decoded JSON answer (None for an empty body)."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(url, data=body, method=method)
        req.add_header("Authorization", f"Token {token or self.token}")
        req.add_header("Accept", "application/json")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        if status not in expect:
            raise LabelStudioAPIError(
                f"{method} {path} answered {status}, expected {expect}: "
                f"{raw[:2000].decode(errors='replace')}")
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, payload: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, payload, **kw)


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    home = data_dir.parent / "home"
    home.mkdir(exist_ok=True)
    env.update({
        "HOME": str(home),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "DJANGO_DB": "sqlite",
        "DATABASE_NAME": str(data_dir / "label_studio.sqlite3"),
        "COLLECT_ANALYTICS": "false",
        "LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        # The ML backend under test (alcore serve) listens on 127.0.0.1: Label Studio refuses
        # loopback ML backend URLs (ML_BLOCK_LOCAL_IP) and webhook targets
        # (SSRF_PROTECTION_ENABLED) by default, so both are off for this local server.
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",  # the "Starting development server" line, at once
    })
    return env


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it was started in a session of its own), SIGKILL
    what is left after 20 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def start_server(executable: str, root: Path, *, timeout: float) -> LabelStudioServer:
    """Start Label Studio under ``root`` and wait until /health answers and the token works.

    Raises RuntimeError (with the server's log) when it exits or does not come up within
    ``timeout`` seconds; the process is stopped then.
    """
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    log_path = root / "label-studio.log"
    port = _free_port()
    args = [executable, "start", "--no-browser", "--internal-host", "127.0.0.1",
            "--host", f"http://127.0.0.1:{port}", "--port", str(port),
            "--data-dir", str(data_dir), "--username", USERNAME, "--password", PASSWORD,
            "--user-token", TOKEN]
    t0 = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=_environment(data_dir),
                                   cwd=root, start_new_session=True)
    server = LabelStudioServer(url="", token=TOKEN, username=USERNAME, password=PASSWORD,
                               data_dir=data_dir, log_path=log_path, process=process)

    def fail(why: str) -> RuntimeError:
        _stop(process)
        return RuntimeError(f"Label Studio ({' '.join(args[:2])}) {why} after "
                            f"{time.perf_counter() - t0:.0f} s; its log "
                            f"({log_path}):\n{server.log_tail()}")

    deadline = t0 + timeout
    while True:
        if process.poll() is not None:
            raise fail(f"exited with status {process.returncode}")
        if time.perf_counter() > deadline:
            raise fail(f"did not answer /health within {timeout:.0f} s "
                       f"(set {TIMEOUT_ENV} to wait longer)")
        if not server.url:
            found = _STARTED.search(log_path.read_text(errors="replace"))
            if found:
                server.url = found.group(1).replace("0.0.0.0", "127.0.0.1")
        if server.url:
            try:
                with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
                    if resp.status == 200 and json.loads(resp.read()).get("status") == "UP":
                        break
            except (OSError, ValueError):
                pass
        time.sleep(0.25)
    server.startup_seconds = time.perf_counter() - t0
    try:
        who = server.get("/api/current-user/whoami")
    except (LabelStudioAPIError, OSError) as exc:
        raise fail(f"is up but the API token is refused ({exc}); legacy API tokens must be "
                   f"enabled (LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)") from None
    if who.get("email") != USERNAME:
        raise fail(f"answered whoami with {who!r}, not the user {USERNAME!r}")
    return server


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory):
    """A running Label Studio server (see the module docstring); stopped at session end."""
    executable = find_label_studio()
    if executable is None:
        why = (f"label-studio is not installed (pip install 'alcore[labelstudio]', or set "
               f"{EXECUTABLE_ENV} to its executable)")
        if in_ci():
            pytest.fail(f"{why}, and CI is set: CI must run the Label Studio integration "
                        f"tests", pytrace=False)
        pytest.skip(why)
    timeout = float(os.environ.get(TIMEOUT_ENV, "240"))
    server = start_server(executable, tmp_path_factory.mktemp("label-studio"),
                          timeout=timeout)
    try:
        yield server
    finally:
        _stop(server.process)
