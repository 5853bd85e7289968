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
        task_ids: Sequence[str] | None = None,
    ) -> None:
        """prefetch(*args, **kwargs) for each header entry on `queue`, then `callback`.

        `task_ids` names the header's tasks, so that the callback can `forget` their
        results once the chord is joined (the Redis backend keeps each for a day).
        """
        ids = list(task_ids) if task_ids is not None else [None] * len(header)
        sigs = [
            self.app.signature(T.PREFETCH.name, args=tuple(a), kwargs=k, queue=queue, task_id=i)
            for (a, k), i in zip(header, ids, strict=True)
        ]
        spec, args = callback
        body = self.app.signature(spec.name, args=tuple(args), queue=spec.queue, immutable=True)
        chord(sigs, body).apply_async()

    def forget(self, task_ids: Sequence[str]) -> None:
        """Drop these tasks' stored results (a joined chord's header), in one round trip."""
        backend = self.app.backend
        keys = [backend.get_key_for_task(t) for t in task_ids]
        if keys:
            backend.client.delete(*keys)
