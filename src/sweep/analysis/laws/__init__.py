"""Scaling laws fitted to a Dataset, as numerics: the Approach-3 fitter (lse.py), Approaches 1-2 and the allocation
(approaches.py), bootstrap intervals (bootstrap.py), the forms beyond one fit (holdout.py, overtrain.py,
inference.py, kaplan.py, repeat.py: Muennighoff's data-constrained form; beyond.py wires them), inputs too many to
fit one by one (aggregate.py), cooldown branches as bootstrap units (cooldown.py), and `estimate` (estimate.py:
which law is fitted to which runs, with the warnings of diagnostics.py) → the result's laws (result/).

Imports: analysis/inputs/, analysis/result/, sweep.files; never report/, lr/, emergence/ (no I/O but the Dataset
they are given).
"""
