"""Training cells from scratch: the recipe, stacked cells trained as one model, checkpoints, and the
ground truth of a whole space."""
