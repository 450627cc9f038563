"""What a reader sees, from fits.json's content: report.md (markdown.py, with runs.py, laws.py, emergence.py, lr.py
for its sections, fmt.py for every value with its interval), the "Can I trust this?" checks that open it (trust.py),
report.html (html.py), the figures (plots/), the lr study's rule file (lr.py) and the wandb analysis run
(wandb_run.py). Formatting and drawing only: no fit is made here.

Imports: analysis/inputs/, laws/, lr/, emergence/, sweep.files, sweep.config.
"""
