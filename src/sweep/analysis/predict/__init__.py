"""Which law predicts: every law form that gives a run's loss (forms.py) fitted on the smaller runs and scored on
the larger ones it has not seen (protocol.py: the rolling protocol or --holdout EXPR's split), ranked into the
leaderboard (leaderboard.py), the laws' parameters under each parameter convention beside it (conventions.py).

Imports: analysis/inputs/, analysis/result/, analysis/laws/ (the fitter's Huber, sizes, the holdout expression);
never report/ (no I/O).
"""
