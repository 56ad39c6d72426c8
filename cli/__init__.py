"""The ``flashmm`` command line: one subcommand per job, each in its own module."""

from cli.main import main

__all__ = ["main"]
