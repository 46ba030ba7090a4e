"""Training: the fit loop, its callbacks, optimizers, and the train job that writes a run."""
