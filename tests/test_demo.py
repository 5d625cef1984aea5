"""`make demo`'s loop, run as the README runs it: real processes over loopback. Publish → the
PoP pulls → quote → checkout → the receipts booked → the wallet shows the cashback pending,
then available after its vesting time (the PoP's clock and the wallet's view are set)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_demo_runs_the_whole_loop() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "serves release 1" in out
    assert "received 3, booked 3, flagged 0, held 0, gaps []" in out
    assert re.search(r"receipt 1-3 \(refund\), chained to [0-9a-f]{12}", out)
    now = re.search(r"now: available (\d+), pending (\d+), points (\d+)", out)
    later = re.search(r"in 31 days: available (\d+), pending (\d+), points (\d+)", out)
    assert now and later, out
    available, pending, points = map(int, now.groups())
    assert pending > 0  # the pickup cashback vests after 30 days
    assert later.groups() == (str(available + pending), "0", str(points))
    assert "stopped PoP (exit 0)" in out and "stopped control plane (exit 0)" in out
