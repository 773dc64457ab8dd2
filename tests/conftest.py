"""Shared by every topic: the repository root, and the session fixtures of ``tests.support``
(the Go-built tools and the real servers they run)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1]

pytest_plugins = ["tests.support.fixtures"]
