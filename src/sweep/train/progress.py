"""What a person watching a run sees: a tqdm bar on a terminal; anywhere else (a SLURM log, `> file`, cells sharing
a terminal) one log line at most every LINE_EVERY_S seconds, never carriage returns. Both show the losses, tokens/s
and MFU (model FLOPs per second over this device's measured matmul peak, measured once, when first shown).
metrics.jsonl is the record; this is only the view."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

LINE_EVERY_S = 30.0
log = logging.getLogger("sweep.train")


PEAK_SECONDS = 0.25  # matmul timing for MFU's denominator: a rough peak, enough for a progress line


class Progress:
    def __init__(self, name: str, total: int, initial: int, enabled: bool, bar: bool | None = None,
                 now=time.monotonic, flops_per_token: float | None = None, peak=None):
        """peak: a callable giving the device's peak FLOP/s (called once, when MFU is first shown); None: no MFU."""
        bar = sys.stderr.isatty() if bar is None else bar  # a bar only where carriage returns redraw a line
        self.name, self.total, self.now = name, total, now
        self.flops_per_token, self._peak, self.peak = flops_per_token, peak, None
        self.bar = tqdm(total=total, initial=initial, desc=name, unit="step", dynamic_ncols=True,
                        leave=False) if enabled and bar else None
        self.lines = enabled and not bar
        self.last_line = now()

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def report(self, step: int, tokens: int, train_loss: float | None, val_loss: float | None,
               tok_per_s: float) -> None:
        """At a log step: the bar's postfix, or a line when LINE_EVERY_S have passed since the last one."""
        now = self.now()
        if self.bar is None and not (self.lines and now - self.last_line >= LINE_EVERY_S):
            return
        fields = {"train_loss": f"{train_loss:.3f}" if train_loss is not None else "-",
                  "val_loss": f"{val_loss:.3f}" if val_loss is not None else "-",
                  "tok/s": f"{tok_per_s:,.0f}", "tokens": f"{tokens:.3g}"}
        if self._peak is not None and self.flops_per_token:
            self.peak = self.peak or self._peak()
            fields["MFU"] = f"{tok_per_s * self.flops_per_token / self.peak:.0%}"
        if self.bar is not None:
            self.bar.set_postfix(fields)
        else:
            self.last_line = now
            log.info("%s: step %d/%d (%.0f%%), %s", self.name, step, self.total, 100 * step / self.total,
                     ", ".join(f"{k} {v}" for k, v in fields.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
