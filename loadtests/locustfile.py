"""The locustfile: users against a PoP (and its control plane), one load profile, SLO verdicts.

`python -m loadtests.run` starts a local stack and runs this headless; to run it by hand
against hosts already running (docs/loadtests.md):

    POPRULES_LOADTEST_POP=https://pop.example POPRULES_LOADTEST_CP=https://cp.example \\
    POPRULES_LOADTEST_TOKEN=mt_... POPRULES_LOADTEST_PROFILE=steady \\
    locust -f loadtests/locustfile.py --headless --csv loadtests/reports/steady

Hosts come from those variables, not `--host`: locust would give every user class the one
host, and the merchant's calls go to the control plane.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The `locust` script's sys.path holds this directory, not the repository the package is in.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust import events

from loadtests import shapes, slo, users
from loadtests.users import BrowserCheckout, MerchantPublisher, PosTerminal

__all__ = ["BrowserCheckout", "MerchantPublisher", "PosTerminal", "Profile"]

users.use_workload(users.workload_from_env())
Profile = shapes.chosen()  # the one LoadTestShape locust finds here
slo.install(events, shapes.profile_name())
