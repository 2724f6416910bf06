"""Progress of a training stage: optimizer steps, loss, studies/s and time left, through `hlip.progress`.

A live bar on a terminal, a plain line every 30 s in a log (the project's one progress mechanism).
"""

from __future__ import annotations

from types import TracebackType

from hlip.progress import ProgressReporter


class StageProgress:
    """Progress over the optimizer steps of one stage; silent when `enabled` is False.

    Args:
        stage: Stage name shown on the left.
        total: Optimizer steps of the stage.
        done: Steps already done (a resumed run; not counted in the rate).
        enabled: Report at all (rank 0 only).
    """

    def __init__(self, stage: str, total: int, done: int = 0, enabled: bool = True) -> None:
        self.reporter = ProgressReporter(f"pretrain {stage}", total, unit="steps", done=done, enabled=enabled)

    def __enter__(self) -> StageProgress:
        self.reporter.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.reporter.close(failed=exc is not None)

    def update(self, loss: float, rate: float) -> None:
        """One optimizer step done, with its loss and throughput (studies/s)."""
        self.reporter.advance(1, loss=loss, studies_per_s=round(rate, 2))
