"""How a failed API call becomes a status problem and a kopf retry decision.

Both reconcilers report a refusal from the API server the same way: the condition says
what was refused and what to do, and kopf retries unless retrying cannot help.
"""

from __future__ import annotations

import kopf
import urllib3

from fedsilo.kube import ApiError

from ._conditions import Problem

#: Seconds before retrying after RBAC refused something (an administrator must act first).
FORBIDDEN_DELAY = 30.0
#: Seconds before retrying after a transient failure (API server busy, conflict, network).
TRANSIENT_DELAY = 5.0


def problem_of(error: ApiError | urllib3.exceptions.HTTPError | OSError) -> Problem:
    """The condition reason and message for a failed call."""
    if isinstance(error, ApiError):
        if error.forbidden:
            return Problem(
                "Forbidden",
                f"the operator may not do this: {error.message}; check the operator's Roles in this namespace",
            )
        if error.invalid:
            return Problem("Invalid", f"the API server rejected an object the operator built: {error.message}")
        return Problem("ApiError", f"{error.status} {error.reason}: {error.message}")
    return Problem("ApiUnreachable", f"cannot reach the API server: {error}")


def retry_decision(
    error: ApiError | urllib3.exceptions.HTTPError | OSError,
) -> kopf.TemporaryError | kopf.PermanentError:
    """Retry what may succeed later; give up on what never will (an object the API server calls invalid)."""
    problem = problem_of(error)
    if isinstance(error, ApiError) and error.invalid:
        return kopf.PermanentError(problem.message)
    delay = FORBIDDEN_DELAY if isinstance(error, ApiError) and error.forbidden else TRANSIENT_DELAY
    return kopf.TemporaryError(problem.message, delay=delay)


#: The longest wait between two retries of one handler.
MAX_DELAY = 300.0


def backed_off(error: kopf.TemporaryError, retry: int) -> kopf.TemporaryError:
    """The same wait, doubled for every retry so far (capped): a lasting failure must not become a storm.

    Waiting is cheap to end early: the events the operator watches (a Silo's key, the
    hub's endpoint, an edit) re-run the reconcile at once.
    """
    delay = min(float(error.delay or TRANSIENT_DELAY) * 2 ** min(retry, 10), MAX_DELAY)
    return kopf.TemporaryError(str(error), delay=delay)


#: What a reconciler catches around its API calls.
CALL_ERRORS = (ApiError, urllib3.exceptions.HTTPError, OSError)
