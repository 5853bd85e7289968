"""Moving a batch through its phases: shields, then edges, a window of slices at a time.

    purge ──> start_phase(0) ──> slices 0..window-1, each a chord:
                                 chord([prefetch(url, pop, variant) ...], verify(batch, 0, n))
              verify(slice n) ──> launches slice n + window; the last of a phase
                                  starts the next phase, the last of all finishes the batch

Rules from CELERY_NOTES.md that shape this module: a chord header is at most
`batch.slice_size` tasks, it is published by a task (never carried inside another
message), and at most `batch.slices_in_flight` slices of a phase are in the broker.
"""

from __future__ import annotations

from warming.batch.plan import Plan
from warming.broker import tasknames as T
from warming.runtime import Runtime
from warming.stages.ended import ended


def start_phase(rt: Runtime, plan: Plan, phase: int) -> None:
    """Launch the slices of a phase's first window that are not launched yet.

    Repeating it is safe, and it is repeated on purpose: a purge or verify redelivered
    after its worker died mid-launch comes back here and publishes only what is missing.
    (A once-only guard left those slices unpublished: measured, the batch then sat in
    `purging` until its deadline.)
    """
    window = min(plan.n_slices(phase), plan.slices_in_flight)
    todo = rt.store.unlaunched(plan.batch_id, phase, range(window))
    if window and not todo:
        return
    rt.store.set_state(plan.batch_id, "warming")
    if plan.phase_size(phase) == 0:  # a tags-only purge: nothing to warm
        advance(rt, plan, phase)
        return
    if window <= 2:  # small batches: skip a hop, webhook-to-verified latency matters
        for s in todo:
            launch_once(rt, plan, phase, s)
        return
    # One task per slice: the window is published by every worker at once.
    for s in todo:
        rt.canvas.send(T.LAUNCH_SLICE, (plan.batch_id, phase, s))


def launch_once(rt: Runtime, plan: Plan, phase: int, n: int) -> None:
    """Publish slice `n` unless it already was, or is verified (a crash between the two
    may repeat it: a repeated slice costs requests, a skipped one would stall the batch)."""
    if n < plan.n_slices(phase) and rt.store.unlaunched(plan.batch_id, phase, [n]):
        launch_chord(rt, plan, phase, n)
        rt.store.mark_launched(plan.batch_id, phase, n)


def launch_chord(rt: Runtime, plan: Plan, phase: int, n: int) -> None:
    """Publish slice `n`'s chord: its prefetch chunks, then its verification."""
    header: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((plan.batch_id, phase, n, lo, hi), {}) for lo, hi in plan.chunks(phase, n)
    ]
    queue = T.prefetch_queue(plan.priority)
    callback = (T.VERIFY, (plan.batch_id, phase, n))
    rt.canvas.chord(header, queue, callback, chunk_task_ids(plan, phase, n))


def chunk_task_ids(plan: Plan, phase: int, n: int) -> list[str]:
    """The ids of slice `n`'s prefetch tasks: the verify callback forgets their results."""
    return [f"{plan.batch_id}-{phase}-{n}-{lo}" for lo, _ in plan.chunks(phase, n)]


def advance(rt: Runtime, plan: Plan, phase: int) -> None:
    """A phase is verified: warm the next tier, or finish the batch."""
    if phase + 1 < len(plan.phases()):
        start_phase(rt, plan, phase + 1)
    elif rt.store.finish(plan.batch_id, "done"):
        ended(rt, plan.batch_id)
