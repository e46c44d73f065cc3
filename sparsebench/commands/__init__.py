"""One module per ``sparsebench`` subcommand, each with ``register(subparsers)``."""
