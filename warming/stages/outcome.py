"""What a stage returns, for the Celery task to act on.

A stage is a plain function: it does its work and says what should happen next.
The task (`warming.tasks`) turns the value into Celery: a return, `self.retry`, or a
fresh message. `RetryIn` is control flow, not an error (dramatiq's `Retry(delay)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Done:
    """The stage finished; `result` is the task's (short) return value."""

    result: str = "done"


@dataclass(frozen=True)
class RetryIn:
    """Run this task again after `seconds` with `kwargs` replacing its own."""

    seconds: float
    kwargs: dict[str, Any] = field(default_factory=dict)
    why: str = "retrying"


@dataclass(frozen=True)
class Continue:
    """Hand the rest of the work to a fresh task (same arguments, `kwargs` updated)."""

    kwargs: dict[str, Any]
    countdown: float = 0.0
    why: str = "continued"


@dataclass(frozen=True)
class Failed:
    """The stage failed for good, and recorded why."""

    reason: str


Outcome = Done | RetryIn | Continue | Failed
