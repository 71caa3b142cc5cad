"""Training: one loop for every model, checkpoints and metrics."""
