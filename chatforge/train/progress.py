"""A compact rich progress bar for any transformers Trainer (TRL's own callback prints whole panels).

It starts at the resumed step after a restart and shows the last logged loss.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

console = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=False)


class RichProgress(TrainerCallback):
    def __init__(self, description: str):
        self.description, self.bar, self.task = description, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = progress_bar()
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=state.max_steps, completed=state.global_step,
                                          info="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar:
            self.bar.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar and logs and "loss" in logs:
            self.bar.update(self.task, info=f"loss {logs['loss']:.3f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar:
            self.bar.stop()
            self.bar = None
