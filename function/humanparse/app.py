"""Kept for callers of ``humanparse.app.create_app``: the HTTP app lives in the ``api`` package."""

from __future__ import annotations

from .api import create_app

__all__ = ["create_app"]
