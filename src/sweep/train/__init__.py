"""Training one cell: bookkeeping (accounting), the model, the plan, the runtime, the step, the loop, checkpoints,
metrics, and the throughput bench."""
