"""The result of `sweep analyze` as one typed tree, and fits.json as its serialisation: fits.py (the tree's root,
Fits, and what the laws rest on), laws.py (the laws of one fit), beyond.py (fit small predict big, over-training,
inference, Kaplan's forms, repeated data), lr.py (the lr study), emergence.py (abilities), record.py (the one
writer and strict reader that turn these dataclasses into fits.json's dicts and back). Estimators build it;
report/, the plots, wandb and `sweep compare` read only it.

Imports: analysis/inputs/ (for AnalysisError), sweep.files; nothing else of analysis/ (the fitters import it).
"""
