"""A learning-rate sweep (`sweep=lr`): per size the best lr (fit.py: a parabola in ln lr with its interval),
across sizes the law lr*(N), and which runs the ordinary laws see (study.py). Its outputs are report/lr.py's.

Imports: analysis/inputs/, analysis/laws/, sweep.files.
"""
