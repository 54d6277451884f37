"""The network and how it is trained: the larger CNN (model), distillation, and the per-layer rules
derived from the sensitivity (allocate)."""
