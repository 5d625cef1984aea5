"""Releases to the Cloudflare Worker: upload, canary, promote, roll back.

A Worker cannot compile WebAssembly at run time, so each release is uploaded as a new Worker
version carrying its rule module, tagged `release-<n>` with the message `<program> release
<n> <hash>`; the tag and the hash together say which version holds which release, so the
deployer keeps no state of its own and Cloudflare's versions and deployments are the truth.
A release reaches the Worker only when it is rolled out to the `cloudflare` group (or to every
PoP): the rollout decides *which* releases the Worker may run, the deployer *how much* of
its traffic each gets.

- `deploy_release` uploads the release (unless a version of it exists) and sends it
  `canary_percent` of the traffic, the rest staying on the version that serves all of it now;
  again with another percentage, it moves the split. One canary at a time: a split between
  two other versions must be promoted or rolled back first.
- `promote` sends all the traffic to the release's version.
- `rollback` sends all of it to the version that ran before the release's: the other side of
  a canary split, or the version of the latest earlier deployment.

Every step is recorded in the audit trail once Cloudflare has accepted it, each in its own
transaction: an upload that succeeded stays recorded even if the deployment after it fails.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from control_plane import audit
from control_plane.cloudflare import (
    DEFAULT_BASE_URL,
    CloudflareApi,
    Deployment,
    Version,
    content_type,
    plain_number,
)
from control_plane.publishing import groups_of
from control_plane.releases import EVERY_POP
from control_plane.storage.models import ProgramVersion, Release

CLOUDFLARE_GROUP = "cloudflare"  # the rollout group whose releases the Worker may run
DEFAULT_CANARY_PERCENT = 10

# Settings: the app's config first, then the environment.
ACCOUNT_ID = "CLOUDFLARE_ACCOUNT_ID"
API_TOKEN = "CLOUDFLARE_API_TOKEN"
SCRIPT = "POPRULES_CLOUDFLARE_SCRIPT"
API_URL = "POPRULES_CLOUDFLARE_API"
STATE = "POPRULES_CLOUDFLARE_STATE"
SETTINGS = (ACCOUNT_ID, API_TOKEN, SCRIPT, API_URL, STATE)
MERCHANT_PLACEHOLDER = "{merchant}"

WRANGLER_CONFIG = "wrangler.toml"
VENDORED = "python_modules/"  # vendored packages: uploaded under this name wherever main is
KEPT_BINDINGS = ["secret_text", "secret_key"]  # the Worker's secrets survive every upload
# Bindings a version would need that this deployer does not translate: refused, not dropped.
UNSUPPORTED = ("kv_namespaces", "r2_buckets", "d1_databases", "services",
               "analytics_engine_datasets", "ai", "hyperdrive", "vectorize", "browser",
               "dispatch_namespaces", "mtls_certificates", "send_email", "workflows",
               "secrets_store_secrets", "wasm_modules", "text_blobs", "data_blobs", "assets",
               "containers", "unsafe")

#: What builds a release's Worker directory: {path relative to the directory: content}.
WorkerBuilder = Callable[[Release], Mapping[str, bytes]]


class DeployError(Exception):
    """A step the deployer refuses in the Worker's present state (or configuration); the
    message says why and what to do."""


class NotConfigured(DeployError):
    """A setting the deployer needs is missing; the message names it."""


class WorkerDirError(ValueError):
    """A built Worker directory that cannot be uploaded: a fault of the build, not of the
    request."""


def api_for(merchant_id: int, config: Mapping[str, Any], environ: Mapping[str, str],
            ) -> CloudflareApi:
    """The client of the merchant's Worker, from the settings. The Worker's name must contain
    `{merchant}`, so that no merchant's release can ever replace another merchant's Worker."""
    missing = [key for key in (ACCOUNT_ID, API_TOKEN, SCRIPT)
               if _setting(key, config, environ) is None]
    if missing:
        raise NotConfigured("the Cloudflare deployer is not configured: set "
                            + " and ".join(missing) + " in the control plane's environment")
    try:
        return CloudflareApi(_setting(ACCOUNT_ID, config, environ) or "",
                             _setting(API_TOKEN, config, environ) or "",
                             _setting(API_URL, config, environ) or DEFAULT_BASE_URL,
                             script=_per_merchant(SCRIPT, merchant_id, config, environ))
    except ValueError as exc:
        raise NotConfigured(f"{API_URL}: {exc}") from None


def state_dir(merchant_id: int, config: Mapping[str, Any], environ: Mapping[str, str]) -> Path:
    """The directory `poprules pop enroll` wrote for the merchant's Worker PoP: what the build
    takes its identity and pinned keyring from."""
    return Path(_per_merchant(STATE, merchant_id, config, environ))


def _setting(key: str, config: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    value = config.get(key) or environ.get(key)
    return str(value) if value else None


def _per_merchant(key: str, merchant_id: int, config: Mapping[str, Any],
                  environ: Mapping[str, str]) -> str:
    value = _setting(key, config, environ)
    if value is None:
        raise NotConfigured(f"the Cloudflare deployer is not configured: set {key} in the "
                            "control plane's environment")
    if MERCHANT_PLACEHOLDER not in value:
        raise NotConfigured(f"{key} must contain {MERCHANT_PLACEHOLDER}, replaced by the "
                            "merchant's id: each merchant has its own Worker")
    return value.replace(MERCHANT_PLACEHOLDER, str(merchant_id))


@dataclass(frozen=True)
class Outcome:
    """Where the Worker stands after a step: the release's version, whether this step
    uploaded it, and the deployment serving traffic (with the tags of its versions)."""

    release: int
    version_id: str
    uploaded: bool
    deployment: Deployment | None
    tags: Mapping[str, str | None]
    changed: bool  # False: the Worker already stood so, nothing was sent


def release_tag(release: Release) -> str:
    return f"release-{release.number}"


def deploy_release(session: Session, release: Release, worker_dir_builder: WorkerBuilder,
                   canary_percent: int = DEFAULT_CANARY_PERCENT, *, api: CloudflareApi,
                   actor_token_id: int | None = None) -> Outcome:
    """Upload `release` as a Worker version (unless one exists) and send it `canary_percent`
    of the traffic beside the version that serves the rest (all of it at 100)."""
    if not 1 <= canary_percent <= 100:
        raise ValueError(f"a percentage from 1 to 100, not {canary_percent}")
    groups = groups_of(session, release)
    if not {CLOUDFLARE_GROUP, EVERY_POP} & set(groups):
        raise DeployError(
            f"release {release.number} is not rolled out to the {CLOUDFLARE_GROUP!r} group "
            f"nor to every PoP (it is rolled out to: {', '.join(groups) or 'none'}); roll it "
            f'out first: POST .../releases/{release.number}/rollout {{"group": '
            f'"{CLOUDFLARE_GROUP}"}}')
    program = _program(session, release)
    versions = api.versions()
    current = _current(api.deployments())
    tags = {v.id: v.tag for v in versions}
    version_id = _version_of(release, versions, current)
    stable = _stable_side(release, version_id, canary_percent, current, tags)
    uploaded = version_id is None
    if version_id is None:
        files, metadata = worker_upload(worker_dir_builder(release))
        version_id = api.upload_version(files, metadata, release_tag(release),
                                        f"{program} release {release.number} "
                                        f"{release.release_hash}")
        tags[version_id] = release_tag(release)
        _record(session, audit.CLOUDFLARE_UPLOADED, release, actor_token_id, api,
                version_id=version_id, hash=release.release_hash)
    split = ((version_id, 100.0),) if stable is None else \
        ((version_id, float(canary_percent)), (stable, float(100 - canary_percent)))
    if current is not None and current.split == split:  # so it stands (never after an upload)
        return Outcome(release.number, version_id, uploaded, current, tags, changed=False)
    deployment = api.deploy(split, f"{program} release {release.number} at {canary_percent}%")
    _record(session, audit.CLOUDFLARE_DEPLOYED, release, actor_token_id, api,
            version_id=version_id, percent=canary_percent, split=_split_json(split, tags))
    return Outcome(release.number, version_id, uploaded, deployment, tags, changed=True)


def promote(session: Session, release: Release, *, api: CloudflareApi,
            actor_token_id: int | None = None) -> Outcome:
    """Send all of the Worker's traffic to the release's version (it must be deployed)."""
    program = _program(session, release)
    versions = api.versions()
    current = _current(api.deployments())
    tags = {v.id: v.tag for v in versions}
    version_id = _deployed_version(release, versions, current, tags)
    split = ((version_id, 100.0),)
    if current is not None and current.split == split:
        return Outcome(release.number, version_id, False, current, tags, changed=False)
    deployment = api.deploy(split, f"{program} release {release.number} promoted")
    _record(session, audit.CLOUDFLARE_PROMOTED, release, actor_token_id, api,
            version_id=version_id, previous=_split_json(current.split if current else (), tags))
    return Outcome(release.number, version_id, False, deployment, tags, changed=True)


def rollback(session: Session, release: Release, *, api: CloudflareApi,
             actor_token_id: int | None = None) -> Outcome:
    """Send all of the Worker's traffic back to the version that ran before the release's:
    the other side of its canary, or the latest earlier deployment's main version."""
    program = _program(session, release)
    versions = api.versions()
    deployments = api.deployments()
    current = _current(deployments)
    tags = {v.id: v.tag for v in versions}
    version_id = _deployed_version(release, versions, current, tags)
    previous = _previous(deployments, version_id)
    if previous is None:
        raise DeployError(f"the Worker has no version before release {release.number}'s to "
                          "roll back to")
    split = ((previous, 100.0),)
    deployment = api.deploy(split, f"{program} release {release.number} rolled back")
    _record(session, audit.CLOUDFLARE_ROLLED_BACK, release, actor_token_id, api,
            version_id=version_id, to_version_id=previous, to_tag=tags.get(previous))
    return Outcome(release.number, previous, False, deployment, tags, changed=True)


def outcome_json(outcome: Outcome, script: str) -> dict[str, Any]:
    deployment = outcome.deployment
    return {"script": script, "release": outcome.release, "version_id": outcome.version_id,
            "uploaded": outcome.uploaded, "changed": outcome.changed,
            "deployment": None if deployment is None else {
                "id": deployment.id,
                "versions": _split_json(deployment.split, outcome.tags)}}


def worker_upload(files: Mapping[str, bytes]) -> tuple[dict[str, tuple[bytes, str]],
                                                        dict[str, Any]]:
    """The module parts and the metadata of a version, from a built Worker directory, as
    `wrangler versions upload` would make them: the modules are the files under the directory
    of `main`, named from there, and the vendored `python_modules/`; the metadata comes from
    `wrangler.toml` (main, compatibility date and flags, vars, queue producers, Durable
    Object bindings, version metadata, limits, placement). What is not part of a version
    (routes, observability, queue consumers, Durable Object migrations) is the operator's
    `wrangler deploy`'s: a version that needs a new migration is refused by Cloudflare."""
    if WRANGLER_CONFIG not in files:
        raise WorkerDirError(f"the built Worker directory has no {WRANGLER_CONFIG}")
    try:
        config = tomllib.loads(files[WRANGLER_CONFIG].decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WorkerDirError(f"{WRANGLER_CONFIG}: {exc}") from None
    main, date = config.get("main"), config.get("compatibility_date")
    if not isinstance(main, str) or not isinstance(date, str):
        raise WorkerDirError(f"{WRANGLER_CONFIG} needs main and compatibility_date")
    unsupported = [key for key in UNSUPPORTED if key in config]
    if unsupported:
        raise WorkerDirError(f"{WRANGLER_CONFIG} has {', '.join(unsupported)}, which the "
                             "deployer does not upload")
    root = posixpath.dirname(posixpath.normpath(main))
    modules: dict[str, tuple[bytes, str]] = {}
    for path, content in files.items():
        name = _module_name(path, root)
        if name is not None:
            modules[name] = (content, content_type(name))
    main_module = posixpath.relpath(posixpath.normpath(main), root or ".")
    if main_module not in modules:
        raise WorkerDirError(f"main ({main}) is not in the built Worker directory")
    metadata: dict[str, Any] = {
        "main_module": main_module, "compatibility_date": date,
        "compatibility_flags": list(config.get("compatibility_flags", [])),
        "bindings": _bindings(config), "keep_bindings": KEPT_BINDINGS}
    for key in ("limits", "placement"):
        if key in config:
            metadata[key] = config[key]
    return modules, metadata


def _module_name(path: str, root: str) -> str | None:
    normal = posixpath.normpath(path)
    if normal != path or normal.startswith(("/", "../")) or normal == "..":
        raise WorkerDirError(f"not a plain relative path in the Worker directory: {path!r}")
    if path == WRANGLER_CONFIG:
        return None
    if not root:
        return path
    if path.startswith(root + "/"):
        return path[len(root) + 1:]
    return path if path.startswith(VENDORED) else None


def state_builder(state: Path) -> WorkerBuilder:
    """Build a release's Worker directory as `poprules build --target cloudflare` does, for
    the Worker PoP whose state directory is `state`."""
    def build(release: Release) -> dict[str, bytes]:
        # Imported when first needed: the control plane runs without the edge toolchain until
        # a merchant deploys to the Worker.
        from edge_worker.cloudflare.build import BuildError, build_worker

        signature = {"number": release.number, "hash": release.release_hash,
                     "key_id": release.key_id, "signature": release.signature}
        with tempfile.TemporaryDirectory(prefix="poprules-worker-") as scratch:
            work = Path(scratch)
            (work / "bundle").write_bytes(release.bundle)
            (work / "release.json").write_text(json.dumps(signature), encoding="utf-8")
            out = work / "worker"
            try:
                build_worker(bundle=work / "bundle", signature=work / "release.json",
                             state=state, out=out)
            except BuildError as exc:
                raise WorkerDirError(str(exc)) from None
            return {path.relative_to(out).as_posix(): path.read_bytes()
                    for path in sorted(out.rglob("*")) if path.is_file()}

    return build


def _bindings(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    bindings: list[dict[str, Any]] = []
    for name, value in (config.get("vars") or {}).items():
        bindings.append({"type": "plain_text", "name": name, "text": value}
                        if isinstance(value, str) else
                        {"type": "json", "name": name, "json": value})
    for producer in (config.get("queues") or {}).get("producers", []):
        bindings.append({"type": "queue", "name": producer["binding"],
                         "queue_name": producer["queue"]})
    for durable in (config.get("durable_objects") or {}).get("bindings", []):
        bindings.append({"type": "durable_object_namespace", "name": durable["name"],
                         "class_name": durable["class_name"],
                         **({"script_name": durable["script_name"]}
                            if "script_name" in durable else {})})
    if "version_metadata" in config:
        bindings.append({"type": "version_metadata",
                         "name": config["version_metadata"]["binding"]})
    return bindings


def _program(session: Session, release: Release) -> str:
    version = session.get(ProgramVersion, release.version_id)
    assert version is not None
    return version.program_name


def _current(deployments: Sequence[Deployment]) -> Deployment | None:
    return deployments[0] if deployments else None  # Cloudflare lists the live one first


def _is_release(version: Version, release: Release) -> bool:
    return version.tag == release_tag(release) and \
        (version.message or "").endswith(release.release_hash)


def _version_of(release: Release, versions: Sequence[Version],
                current: Deployment | None) -> str | None:
    """The release's version: the one deployed now if any, else the newest uploaded."""
    mine = [v.id for v in versions if _is_release(v, release)]
    live = [vid for vid, _ in (current.split if current else ()) if vid in mine]
    found = live or mine
    return found[0] if found else None


def _deployed_version(release: Release, versions: Sequence[Version],
                      current: Deployment | None, tags: Mapping[str, str | None]) -> str:
    live = {vid for vid, _ in (current.split if current else ())}
    for version in versions:
        if version.id in live and _is_release(version, release):
            return version.id
    raise DeployError(f"release {release.number} is not deployed on the Worker (it runs "
                      f"{_describe(current, tags)}); deploy it first: POST "
                      f".../releases/{release.number}/cloudflare")


def _stable_side(release: Release, version_id: str | None, percent: int,
                 current: Deployment | None, tags: Mapping[str, str | None]) -> str | None:
    """The version that keeps the rest of the traffic beside a canary of `percent` (None: the
    release takes all of it). Checked before anything is uploaded."""
    if percent == 100 or current is None:
        return None
    others = [vid for vid, _ in current.split if vid != version_id]
    if not others:
        raise DeployError(f"release {release.number} serves all of the Worker's traffic "
                          "already; to try it again on a part, roll it back first")
    if len(others) > 1:
        raise DeployError(f"the Worker is split between other versions "
                          f"({_describe(current, tags)}): promote or roll back that canary first")
    return others[0]


def _previous(deployments: Sequence[Deployment], version_id: str) -> str | None:
    """The version with the most traffic in the latest deployment that had another than
    `version_id` (the current one's other side, when it is a split)."""
    for deployment in deployments:
        others = [(share, vid) for vid, share in deployment.split if vid != version_id]
        if others:
            return max(others)[1]
    return None


def _describe(deployment: Deployment | None, tags: Mapping[str, str | None]) -> str:
    if deployment is None or not deployment.split:
        return "no deployment"
    return ", ".join(f"{tags.get(vid) or 'version ' + vid} at {plain_number(share)}%"
                     for vid, share in deployment.split)


def _split_json(split: Sequence[tuple[str, float]],
                tags: Mapping[str, str | None]) -> list[dict[str, Any]]:
    return [{"version_id": vid, "percentage": plain_number(share), "tag": tags.get(vid)}
            for vid, share in split]


def _record(session: Session, kind: str, release: Release, actor_token_id: int | None,
            api: CloudflareApi, **details: Any) -> None:
    audit.record(session, kind, merchant_id=release.merchant_id, actor_token_id=actor_token_id,
                 release=release.number, script=api.script, **details)
    session.commit()
