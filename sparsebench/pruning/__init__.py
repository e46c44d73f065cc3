"""The pruning family's engine: scores shared by several methods and per-layer sparsity plans."""
