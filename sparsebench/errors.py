"""The one error type users see for bad input: it names where, what and what is allowed."""


class ConfigError(ValueError):
    """Bad user input (config, CLI flags, method parameters).

    The message always says where the bad value is, what it was, and what
    would be accepted, e.g. ``config.yaml: experiments.pruning.targets[0].sparsity=1.5
    is outside [0, 1)``.
    """
