"""The core's side of each method family.

Each module here defines ``FAMILY`` (the folder name under ``methods/``),
``BASE`` (the class every method of that family subclasses) and
``run(ctx) -> dict`` (how one job of that family runs; see ``sparsebench.runner``).
"""
