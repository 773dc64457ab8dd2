"""The one exception every policy engine raises when it cannot decide."""

from __future__ import annotations


class PolicyUnavailable(RuntimeError):
    """No decision (engine down, timed out, malformed answer). Callers must treat it as deny."""
