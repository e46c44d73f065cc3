"""The core of the sparse-training family: the training loop, layer-wise budgets
(ERK / uniform), mask updates that keep the budget, schedules and FLOP accounting.

Methods (``methods/sparse_training/*.py``) only decide masks; everything here is
shared by all of them (see ``sparsebench.families.sparse_training`` for the hooks).
"""
