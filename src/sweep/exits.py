"""The exit codes of every `sweep` command, one owner for each (README's commands and the schedulers rely on them).

0 is success. A run that a signal stopped after checkpointing exits EX_TEMPFAIL, the code schedulers and wrappers
read as "try again" (SIGTERM, SIGUSR1, SIGUSR2: a scheduler's warning before a time limit or preemption); Ctrl-C
exits as a shell reports SIGINT.
"""

EXIT_FAILED = 1  # a run, a grid's cell or a re-scoring failed (its error is named)
EXIT_INPUT_ERROR = 2  # input the command cannot use: one line on stderr, nothing written
EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped by a signal after a checkpoint; a relaunch resumes
EXIT_INTERRUPTED = 130  # 128 + SIGINT
