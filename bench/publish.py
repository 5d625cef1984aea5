"""Publishing a 1,000-rule program through the control plane (issue 5: ≤ 1 s).

In one process, through the Flask app (its test client, so no network), on a fresh SQLite
database: upload the draft (check and store it), then publish it (build the bundle, load it as
a PoP would, check the module against the reference interpreter on the draft's samples, sign,
store). Publish is timed twice: with the draft's checked program still in the process's
memory (the usual case: the upload just checked it) and after forgetting it, as a control
plane worker that did not see the upload must check the program again.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from control_plane import versions
from control_plane.app import create_app
from control_plane.auth import SCOPES
from control_plane.tokens import create_merchant, create_token
from wasm_build.random_program import GeneratedProgram

SAMPLES = 5
REPEATS = 3


def publish_timings(generated: GeneratedProgram, carts: Sequence[dict[str, Any]]
                    ) -> list[tuple[str, list[float]]]:
    """(step, seconds of each repeat) for upload, publish (warm) and publish (cold)."""
    with tempfile.TemporaryDirectory(prefix="poprules-bench-cp-") as scratch:
        root = Path(scratch)
        app = create_app({"DATABASE_URL": f"sqlite:///{root / 'cp.db'}",
                          "POPRULES_KEY_DIR": str(root / "keys")})
        plane = app.extensions["poprules"]
        try:
            with plane.db.session() as session:
                merchant = create_merchant(session, "bench")
                _, token = create_token(session, merchant, frozenset(SCOPES), "bench",
                                        actor_token_id=None)
                session.commit()
                merchant_id = merchant.id
            client = app.test_client()
            headers = {"Authorization": f"Bearer {token}"}
            base = f"/v1/merchants/{merchant_id}"
            draft = {"program": generated.program_yaml, "catalog": generated.catalog_json,
                     "samples": list(carts[:SAMPLES])}
            steps: dict[str, list[float]] = {"upload (check + store)": [],
                                             "publish, checked program in memory": [],
                                             "publish, program checked again": []}
            for _ in range(REPEATS):
                versions.forget()
                began = time.perf_counter()
                made = client.post(f"{base}/versions", json=draft, headers=headers)
                steps["upload (check + store)"].append(time.perf_counter() - began)
                if made.status_code != 201:
                    raise RuntimeError(f"upload refused: {made.get_json()}")
                number = made.get_json()["number"]
                for label, cold in (("publish, checked program in memory", False),
                                    ("publish, program checked again", True)):
                    if cold:
                        versions.forget()
                    began = time.perf_counter()
                    published = client.post(f"{base}/releases", json={"version": number},
                                            headers=headers)
                    steps[label].append(time.perf_counter() - began)
                    if published.status_code != 201:
                        raise RuntimeError(f"publish refused: {published.get_json()}")
            return list(steps.items())
        finally:
            plane.db.dispose()
