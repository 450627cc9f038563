"""`sweep analyze` and `sweep compare`: load runs, fit scaling laws with bootstrap intervals, plot, report.

Rooms, each importing only the ones before it: inputs/ (a sweep directory or a CSV → Dataset) → result/ (the
typed result, fits.json's writer and reader) → laws/ (the fits, pure numerics → the result) → lr/, emergence/ (an
lr study; abilities) → report/ (report.md, report.html, plots, wandb) → main.py (`sweep analyze`: the order of the
stages) and compare.py (`sweep compare`).
"""
