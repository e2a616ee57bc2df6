"""Command-line entry points. One module per command group, each with ``register()``."""
