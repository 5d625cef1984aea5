"""`poprules cp serve` runs gunicorn, which answers /healthz on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

POPRULES = Path(sys.executable).parent / "poprules"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_gunicorn_serves_healthz(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'poprules.db'}",
           "POPRULES_KEY_DIR": str(tmp_path / "keys")}
    server = subprocess.Popen([str(POPRULES), "cp", "serve", "--bind", f"127.0.0.1:{port}",
                               "--workers", "2"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    assert r.headers["Server"].startswith("gunicorn")
                    assert json.load(r) == {"status": "ok", "database": "sqlite"}
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
                time.sleep(0.1)
        # both workers share the one key made before they started
        assert len(list((tmp_path / "keys").glob("*.key"))) == 1
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output
    assert "Booting worker" in output and "GET /healthz" in output
