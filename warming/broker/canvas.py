"""Publishing warming's tasks by name: what the stages hand to Celery.

The stages decide *what* runs next (a slice's chord, a purge continued later); this
turns it into Celery messages. Tasks are addressed by the names in
`warming.broker.tasknames`, so nothing here imports `warming.tasks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery, chord

from warming.broker import tasknames as T


class Canvas:
    """Publishes tasks through one Celery app."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(
        self,
        task: T.TaskSpec,
        args: Sequence[Any],
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
    ) -> None:
        """Queue one task (on its table queue) after `countdown` seconds."""
        self.app.send_task(
            task.name, args=tuple(args), kwargs=kwargs or {}, queue=task.queue,
            countdown=countdown, ignore_result=task.ignore_result,
        )  # fmt: skip

    def chord(
        self,
        header: Sequence[tuple[Sequence[Any], dict[str, Any]]],
        queue: str,
        callback: tuple[T.TaskSpec, Sequence[Any]],
    ) -> None:
        """prefetch(*args, **kwargs) for each header entry on `queue`, then `callback`."""
        sigs = [
            self.app.signature(T.PREFETCH.name, args=tuple(a), kwargs=k, queue=queue)
            for a, k in header
        ]
        spec, args = callback
        body = self.app.signature(spec.name, args=tuple(args), queue=spec.queue, immutable=True)
        chord(sigs, body).apply_async()
