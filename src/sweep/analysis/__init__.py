"""`sweep analyze`: load runs, fit scaling laws with bootstrap intervals, plot, report.

- load.py: a sweep directory (through sweep.rundir) or a CSV → Dataset; finite.py: which numbers may be fitted;
  aggregate.py: a Dataset of more than AGGREGATE_ABOVE runs → weighted bins (small inputs pass unchanged).
- lse.py: the Approach-3 fitter and law parameters; laws.py: allocation, Approaches 1-2, holdout;
  bootstrap.py: resampling and intervals (the three pure numerics, no I/O).
- estimate.py: which law is fitted to which runs → fits.json's content.
- plots.py, report.py, wandb_run.py: the outputs; main.py: `sweep analyze` (`run`, `main`).
"""
