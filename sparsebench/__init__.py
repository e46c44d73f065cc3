"""sparsebench: a benchmark and reproducibility harness for sparse neural networks.

The core knows no method, task or hardware profile by name: it discovers them
under ``methods/<family>/``, ``tasks/`` and ``hardware/`` (see ``registry``).
"""

__version__ = "0.1.0"
