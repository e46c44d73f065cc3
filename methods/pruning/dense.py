"""dense: the unpruned model, the reference row of every table."""

from sparsebench.families.pruning import PruningMethod


class Dense(PruningMethod):
    name = "dense"
    reference = True  # runs once per task and seed, at sparsity 0
    patterns = ("unstructured",)

    def prune(self, layers, target, generator):
        if target.sparsity > 0:
            raise ValueError(f"dense does not prune; got target {target.label}")
        return {}
