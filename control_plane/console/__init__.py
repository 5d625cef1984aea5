"""The merchant console (/console) and the shoppers' claim page (/claim): server-rendered
HTML pages over the same code the API runs (docs/console.md). They are not API endpoints:
they authenticate with a signed session cookie, answer HTML, and stay out of the OpenAPI
document."""

from __future__ import annotations

from flask import Blueprint

from control_plane.console import activity, audit, claim, drafts, releases, signin, web

BLUEPRINTS: tuple[Blueprint, ...] = (web.console, web.claim)

# The modules above register their pages on the blueprints when imported.
_PAGES = (activity, audit, claim, drafts, releases, signin)
