"""The merchant's Cloudflare Worker: deploy a release to a part of its traffic, promote it,
roll it back (control_plane/deployer.py; docs/cloudflare.md).
---
schemas:
  WorkerDeployment:
    type: object
    required: [script, release, version_id, uploaded, changed, deployment]
    properties:
      script: {type: string, description: The Worker's name}
      release: {type: integer}
      version_id: {type: string, description: "The version this step is about (after a rollback: the one now serving)"}
      uploaded: {type: boolean, description: This step uploaded the release as a new version}
      changed: {type: boolean, description: "False: the Worker stood so already, nothing was sent"}
      deployment:
        type: [object, "null"]
        required: [id, versions]
        properties:
          id: {type: string}
          versions:
            type: array
            items:
              type: object
              required: [version_id, percentage, tag]
              properties:
                version_id: {type: string}
                percentage: {type: number}
                tag: {type: [string, "null"], description: "release-<n>, or another tag"}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Blueprint, current_app
from sqlalchemy import select

from control_plane import deployer
from control_plane.auth import caller, require
from control_plane.cloudflare import CloudflareApi, CloudflareError
from control_plane.context import session
from control_plane.errors import ApiError, invalid
from control_plane.storage.models import Release
from control_plane.wire import json_body

bp = Blueprint("cloudflare", __name__,
               url_prefix="/v1/merchants/<int:merchant_id>/releases/<int:number>/cloudflare")

BUILDER = "POPRULES_CLOUDFLARE_BUILDER"  # app config only: a WorkerBuilder (tests, embedding)
T = TypeVar("T")


def _release(merchant_id: int, number: int) -> Release:
    release = session().scalar(select(Release).where(Release.merchant_id == merchant_id,
                                                     Release.number == number))
    if release is None:
        raise ApiError(404, "number", f"no release {number}")
    return release


def _configured(setting: Callable[[int, Mapping[str, Any], Mapping[str, str]], T],
                merchant_id: int) -> T:
    try:
        return setting(merchant_id, current_app.config, os.environ)
    except deployer.NotConfigured as exc:
        raise ApiError(409, None, str(exc)) from None


def _run(api: CloudflareApi, step: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a deployer step; its refusals and Cloudflare's become the API's error answers."""
    try:
        outcome = step(session(), *args, api=api, actor_token_id=caller().token_id, **kwargs)
    except deployer.DeployError as exc:
        raise ApiError(409, None, str(exc)) from None
    except CloudflareError as exc:
        raise ApiError(502, None, str(exc)) from None
    except deployer.WorkerDirError as exc:
        current_app.logger.error("the Worker directory cannot be uploaded: %s", exc)
        raise ApiError(500, None, f"the release's Worker cannot be built: {exc}") from None
    return deployer.outcome_json(outcome, api.script)


@bp.post("")
@require("publish")
def post_deploy(merchant_id: int, number: int) -> dict[str, Any]:
    """Upload the release as a version of the merchant's Worker (unless it is uploaded
    already) and send it `percent` of the traffic, the rest staying on the version that serves
    it now; again with another percentage, the split moves. The release must be rolled out to
    the `cloudflare` group or to every PoP.
    ---
    post:
      summary: Deploy a release to a part (or all) of the Worker's traffic
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                percent: {type: integer, minimum: 1, maximum: 100, default: 10}
      responses:
        200: {description: Where the Worker stands now, content: {application/json: {schema: WorkerDeployment}}}
        409: {description: "Not configured (the message names the setting), or refused in the Worker's present state (the message says why)", content: {application/json: {schema: Error}}}
        502: {description: "Cloudflare refused or could not be reached; the message carries its error codes and messages", content: {application/json: {schema: Error}}}
    """
    body = json_body(frozenset({"percent"}))
    percent = body.get("percent", deployer.DEFAULT_CANARY_PERCENT)
    if type(percent) is not int or not 1 <= percent <= 100:
        raise invalid("percent", "a whole percentage from 1 to 100 (default 10)")
    release = _release(merchant_id, number)
    api = _configured(deployer.api_for, merchant_id)
    builder = current_app.config.get(BUILDER) or deployer.state_builder(
        _configured(deployer.state_dir, merchant_id))
    return _run(api, deployer.deploy_release, release, builder, percent)


@bp.post("/promote")
@require("publish")
def post_promote(merchant_id: int, number: int) -> dict[str, Any]:
    """All of the Worker's traffic to the release's version, deployed before on a part.
    ---
    post:
      summary: Send all of the Worker's traffic to the release
      responses:
        200: {description: Where the Worker stands now, content: {application/json: {schema: WorkerDeployment}}}
        409: {description: "Not configured (the message names the setting), or refused in the Worker's present state (the message says why)", content: {application/json: {schema: Error}}}
        502: {description: "Cloudflare refused or could not be reached; the message carries its error codes and messages", content: {application/json: {schema: Error}}}
    """
    release = _release(merchant_id, number)
    return _run(_configured(deployer.api_for, merchant_id), deployer.promote, release)


@bp.post("/rollback")
@require("publish")
def post_rollback(merchant_id: int, number: int) -> dict[str, Any]:
    """All of the Worker's traffic back to the version that ran before the release's. The
    rollouts stay as they are: to stop the release for good, publish a rollback release.
    ---
    post:
      summary: Send the Worker's traffic back to the version before the release's
      responses:
        200: {description: "Where the Worker stands now (`version_id`: the version serving)", content: {application/json: {schema: WorkerDeployment}}}
        409: {description: "Not configured (the message names the setting), or refused in the Worker's present state (the message says why)", content: {application/json: {schema: Error}}}
        502: {description: "Cloudflare refused or could not be reached; the message carries its error codes and messages", content: {application/json: {schema: Error}}}
    """
    release = _release(merchant_id, number)
    return _run(_configured(deployer.api_for, merchant_id), deployer.rollback, release)
