"""The warnings a fit carries with it (fits.json's `warnings`, the report's first list): degenerate fits, thin
data, resamples that could not be refitted. Decided here, beside the fits; the report only prints them."""

from __future__ import annotations

from ..result.laws import LawFit, TokensFit


def diagnostics(res: LawFit, loss_vs_tokens: list[TokensFit], n_sizes: int, n_runs: int, cis: dict,
                n_boot: int) -> list[str]:
    """The warnings a reader must see: degenerate fits, thin data, resamples that could not be refitted."""
    w = [f"approach2: {m}" for m in res.approach2.warnings or []]
    w += [f"approach1: {m}" for m in res.approach1.warnings]
    names = {"e": "E", "a0": "A", "alpha0": "alpha", "a1": "B", "alpha1": "beta"}
    terms = {"e": "E", "a0": "A/N^alpha", "a1": "B/D^beta"}
    a3 = res.approach3
    for b in a3.at_bound or []:
        w.append(f"approach3: {names.get(b, b)} sits at its bound: the data do not pin it down (degenerate fit)")
    for t in a3.negligible or []:
        w.append(f"approach3: the term {terms[t]} is below 0.1% of the loss at every run: the data do not "
                 f"identify it (degenerate fit)")
    for label, fits, term in (("L(N)", res.kaplan.fits, "A/N^alpha"), ("L(D)", loss_vs_tokens, "B/D^beta")):
        for f in fits:
            w += [f"{label} {f.key}: {b} at its bound (degenerate fit)" for b in f.at_bound]
            w += [f"{label} {f.key}: the term {term if t == 'a0' else 'E'} is negligible (degenerate fit)"
                  for t in f.negligible]
    if a3.fitted:  # else what is missing is the report's first section
        if n_sizes < 4:
            w.append(f"only {n_sizes} model sizes: no held-out-size check, and Approach 3 is weakly constrained")
        if n_runs < 15:
            w.append(f"only {n_runs} runs for a 5-parameter law: treat Approach 3 as indicative")
        st = a3.starts
        if st.reached_best < st.refined // 2:
            w.append(f"approach3: only {st.reached_best} of {st.refined} refined starts reached the best optimum")
    bad = sorted(k for k, c in cis.items() if c["n_valid"] < 0.9 * n_boot)
    if bad:
        w.append(f"bootstrap: {len(bad)} quantities could not be refitted on over 10% of resamples "
                 f"(e.g. {bad[0]}); their intervals are from the resamples that fit")
    return w
