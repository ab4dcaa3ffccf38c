"""Training: experiment paths, atomic checkpoints, the training loop, CCA refinement."""
