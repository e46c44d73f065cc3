"""dense-train: the dense model trained with the task's recipe, the reference row of every sparse-training table."""

from sparsebench.families.sparse_training import SparseTrainingMethod


class DenseTrain(SparseTrainingMethod):
    name = "dense-train"
    reference = True  # runs once per task and seed, at sparsity 0
