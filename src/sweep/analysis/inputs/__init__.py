"""What may be fitted: a sweep directory (read only through sweep.rundir) or a CSV of published runs → `Dataset`
(load.py), the numbers that count as finite (finite.py), which runs are one size (sizes.py), which runs are cooldown
trunks and branches (cooldown.py).

Imports: sweep.rundir, sweep.config, sweep.files; nothing else of analysis/.
"""
