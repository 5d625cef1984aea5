"""The HTTP API: one blueprint per resource, each under /v1 but the health check."""

from __future__ import annotations

from flask import Blueprint

from control_plane.api import audit, health, keys, merchants

BLUEPRINTS: tuple[Blueprint, ...] = (health.bp, merchants.bp, keys.bp, audit.bp)
