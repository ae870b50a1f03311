"""CLI subcommands. Each module defines `register(subparsers)`; the handler is set with `set_defaults(func=...)`.

Handlers return an exit code (int). They are the only place that prints.
"""
