"""The kernel suite: each sparse kernel against its dense twin, timed in one process.

``suite.run_suite(profile)`` runs a kernel set (``small`` for CI on a CPU,
``full`` on a GPU) and returns rows with median times, speed-up over dense,
the ideal speed-up for the density, and the fraction of the profile's peak
FLOP/s and bandwidth. ``gate.check`` compares a run's speed-ups with a stored
baseline. Heavy imports (torch, triton) happen inside the submodules.
"""
