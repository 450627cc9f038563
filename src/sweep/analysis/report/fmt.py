"""How the report and the printed summary show a value with its 95% interval: `value [lo, hi]`, or, when the
interval is missing or of zero width (every resample gave the same value), the value and why it has no interval,
never a `[x, x]` that would read as certainty. Also `sci`, a FLOP count or size as the outputs show it, and `pct`,
a fraction as a percentage.
"""

from __future__ import annotations

from ..result.record import Value
from ..result.fits import Laws


def zero_width(ci) -> bool:
    lo, hi = ci
    return lo is not None and hi is not None and abs(hi - lo) <= 1e-9 * max(abs(lo), abs(hi), 1e-300)


def ci_text(value, ci, fmt="{:.4g}", why_none: str | None = None) -> str:
    """value [lo, hi]; a zero-width or missing interval as the value and why it has none (why_none, if given)."""
    if value is None:
        return "—"
    if ci and zero_width(ci):
        return fmt.format(value) + " (no interval: every resample gave this value)"
    if ci:
        return fmt.format(value) + f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"
    return fmt.format(value) + (f" (no interval: {why_none})" if why_none else "")


def value_text(v: Value | None, fmt="{:.4g}", why_none: str | None = None) -> str:
    """A fitted quantity (None: not fitted) with its interval, as ci_text shows it."""
    return ci_text(None, None) if v is None else ci_text(v.value, v.ci, fmt, why_none)


def why_none(fits: Laws) -> str | None:
    """Why a headline value has no interval (None with --bootstrap 0: the report's opening says so once)."""
    return "fewer than 10 resamples could be refitted" if fits.bootstrap.n else None


def sci(x: float) -> str:
    """A FLOP count or size as the report and the plots show it."""
    return f"{x:.3g}"


def pct(x: float | None, signed: bool = False) -> str:
    """A fraction as a percentage with two decimals (signed: with its sign, for an error), "—" for None."""
    return "—" if x is None else (f"{x * 100:+.2f}%" if signed else f"{x * 100:.2f}%")
