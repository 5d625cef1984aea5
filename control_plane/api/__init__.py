"""The HTTP API: one blueprint per resource, each under /v1 but the health check."""

from __future__ import annotations

from flask import Blueprint

from control_plane.api import (
    audit,
    cloudflare,
    coupons,
    customer_tokens,
    health,
    keys,
    merchants,
    openapi,
    pops,
    receipts,
    releases,
    versions,
    wallets,
    whoami,
)

BLUEPRINTS: tuple[Blueprint, ...] = (health.bp, merchants.bp, keys.bp, audit.bp, versions.bp,
                                     releases.bp, pops.bp, customer_tokens.bp,
                                     openapi.bp, whoami.bp, coupons.bp, receipts.bp,
                                     wallets.bp, cloudflare.bp)
