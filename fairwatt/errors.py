"""The base exception of the application layer (CLI, config, wiring)."""


class FairwattError(Exception):
    """An error the user can act on; the CLI prints its message without a traceback."""
