"""Progress display: how a run talks to its user — live bars on a terminal, one line per round elsewhere, or silence.

The three modes:

- ``tty`` (standard output is a terminal): live bars, each with an ETA — Lightning's training bar with the round,
  epoch and batch (:class:`RoundProgressBar`), pool inference in items per second (:func:`bar`, entered by
  :mod:`alseg.core.inference`), benchmark cells — and the lines of :func:`say` above them.
- ``plain`` (a pipe, a file, CI, a SLURM log): the lines of :func:`say` only (one per round, one per benchmark cell),
  no bar and no carriage return.
- ``quiet``: nothing but errors: no lines, no bars, no Python warnings, no Lightning banners or warnings (errors are
  raised, and the front ends print them).

A front end (``alseg-train``, ``alseg-bench``) decides the mode once with :func:`decide` and runs inside
:func:`using`; the pipeline, the round trainer and pool inference consult :func:`mode`. Code that runs outside a front
end (the Python API) gets the mode of its standard output at the time it asks. Bars go to standard output, as
Lightning's do. Under a distributed run only rank 0 shows bars (Lightning's bar disables itself on the other ranks
too), and only rank 0 says the round lines (the pipeline's writer).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TextIO

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from tqdm import tqdm

from alseg.core import distributed

Mode = Literal["tty", "plain", "quiet"]

#: The format of every alseg bar: what is done, of how much, elapsed time, ETA and the rate (never inverted).
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, ETA {remaining}, {rate_noinv_fmt}{postfix}]"
#: The format without a rate (for slow units such as benchmark cells, where the ETA says more).
BAR_FORMAT_NO_RATE = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, ETA {remaining}{postfix}]"
#: Loggers whose info and warnings (hardware banners, tips, hints) ``quiet`` silences.
_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
_MODE: ContextVar[Mode | None] = ContextVar("alseg_progress_mode", default=None)


def decide(quiet: bool = False, stream: TextIO | None = None) -> Mode:
    """Returns the mode of a front end: ``quiet`` if asked, else ``tty`` when ``stream`` is a terminal, else ``plain``.

    Args:
        quiet: The user asked for silence (``--quiet``).
        stream: The stream that bars and lines go to; standard output by default.
    """
    if quiet:
        return "quiet"
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "tty" if callable(isatty) and isatty() else "plain"


def mode() -> Mode:
    """Returns the mode in force: that of the enclosing :func:`using`, else :func:`decide` of standard output now."""
    return _MODE.get() or decide()


@contextmanager
def using(chosen: Mode) -> Iterator[None]:
    """Runs the block in mode ``chosen``; ``quiet`` also silences warnings and Lightning's (and W&B's) messages.

    Everything it changes (the mode, warning filters, logger levels, ``WANDB_SILENT``) is restored afterwards.
    """
    token = _MODE.set(chosen)
    try:
        with ExitStack() as stack:
            if chosen == "quiet":
                stack.enter_context(_silenced())
            yield
    finally:
        _MODE.reset(token)


def shows_bars() -> bool:
    """Returns True when this process draws bars: a terminal, not quiet, and rank 0 of a distributed run."""
    return mode() == "tty" and distributed.is_rank_zero()


def say(line: str) -> None:
    """Writes one line of the run's record (a round, a benchmark cell) to standard output, unless quiet.

    On a terminal the line goes above any open bar; it is flushed at once, so that logs show it when it happens.
    """
    current = mode()
    if current == "tty":
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()
    elif current == "plain":
        print(line, flush=True)


def bar(total: int | None, description: str, unit: str = "item", initial: int = 0, rate: bool = True) -> tqdm:
    """Returns a live bar of ``total`` units with ETA; a disabled one (every method a no-op) unless :func:`shows_bars`.

    The bar is updated with counts the caller already holds (e.g. the number of ids of a batch), so it adds no host
    synchronisation. Use it as a context manager so that it closes on errors too.

    Args:
        total: Units of the whole task, or None if unknown (no ETA then).
        description: What is being done, e.g. ``pool scoring``.
        unit: The unit counted, shown in the rate (``item/s``).
        initial: Units done before this bar started (e.g. cells finished in an earlier run); not counted in the rate.
        rate: Show the rate; off for slow units.
    """
    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        unit=unit,
        disable=not shows_bars(),
        file=sys.stdout,
        dynamic_ncols=True,
        smoothing=0,
        bar_format=BAR_FORMAT if rate else BAR_FORMAT_NO_RATE,
    )


class RoundProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar labelled with the active-learning round: ``round 2 · epoch 3/10, round ETA 01:23``.

    The batch bar of each epoch shows its own ETA and rate; the description adds the round and the epoch, and from
    the second epoch on the ETA of the round (the mean epoch time so far, validation included, times the epochs left;
    an upper bound under early stopping). Validation and test bars are transient. The logger's version (``v_num``)
    is left out: the round says it.

    Args:
        label: The stage shown first, e.g. ``round 2``.
    """

    BAR_FORMAT = BAR_FORMAT

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self._fit_start = 0.0

    @property
    def train_description(self) -> str:
        """The description of the batch bar before the first epoch starts."""
        return f"{self.label} · training"

    @property
    def sanity_check_description(self) -> str:
        """The description of Lightning's sanity-check validation."""
        return f"{self.label} · sanity check"

    @property
    def validation_description(self) -> str:
        """The description of validation bars."""
        return f"{self.label} · validation"

    @property
    def test_description(self) -> str:
        """The description of test bars."""
        return f"{self.label} · test"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Starts the round's clock and the batch bar."""
        self._fit_start = time.monotonic()
        super().on_train_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Trainer, *args: Any) -> None:
        """Resets the batch bar and describes the round, the epoch and the round's ETA."""
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(self.describe(trainer.current_epoch, trainer.max_epochs))

    def describe(self, epoch: int, max_epochs: int | None) -> str:
        """Returns the description of training epoch ``epoch`` (from 0) of ``max_epochs`` (None or -1: unbounded)."""
        if max_epochs is None or max_epochs < 0:
            return f"{self.label} · epoch {epoch + 1}"
        text = f"{self.label} · epoch {epoch + 1}/{max_epochs}"
        if epoch > 0:
            left = (time.monotonic() - self._fit_start) / epoch * (max_epochs - epoch)
            text += f", round ETA {tqdm.format_interval(left)}"
        return text

    def init_validation_tqdm(self) -> tqdm:
        """Lightning's validation bar, cleared when it ends."""
        return _transient(super().init_validation_tqdm())

    def init_test_tqdm(self) -> tqdm:
        """Lightning's test bar, cleared when it ends."""
        return _transient(super().init_test_tqdm())

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """The metrics the model logs with ``prog_bar=True``, without the logger's version."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


def _transient(progress_bar: tqdm) -> tqdm:
    progress_bar.leave = False
    return progress_bar


@contextmanager
def _silenced() -> Iterator[None]:
    """Ignores warnings, raises Lightning's loggers to ERROR and sets ``WANDB_SILENT``; restores them afterwards."""
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    wandb_silent = os.environ.get("WANDB_SILENT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        os.environ["WANDB_SILENT"] = "true"
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
            if wandb_silent is None:
                os.environ.pop("WANDB_SILENT", None)
            else:
                os.environ["WANDB_SILENT"] = wandb_silent
