"""Terminal progress of a training stage (rich): steps, loss, studies/s and time left."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class StageProgress:
    """A rich progress bar over the optimizer steps of one stage; silent when `enabled` is False.

    Args:
        stage: Stage name shown on the left.
        total: Optimizer steps of the stage.
        done: Steps already done (a resumed run).
        enabled: Draw it (rank 0 only).
    """

    def __init__(self, stage: str, total: int, done: int = 0, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.1f} studies/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task(stage, total=total, completed=done, loss=float("nan"), rate=0.0)

    def __enter__(self) -> StageProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()

    def update(self, loss: float, rate: float) -> None:
        """One optimizer step done, with its loss and throughput."""
        self._progress.update(self._task, advance=1, loss=loss, rate=rate)
