"""Abilities and emergence: the runs' tasks.json and task events as a table (load.py), per variant and metric the
trend with size, jump share, the Schaeffer overlay, CoT vs direct, shots, ICL, the two-step prediction (trends.py),
and the verdict rules (verdict.py: emergent, or a metric artefact?).

Imports: analysis/inputs/, analysis/laws/, sweep.rundir, sweep.stats, sweep.files.
"""
