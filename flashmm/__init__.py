"""FlashMM shared kernel: domain types, config, simulator, venue interface and the CLI."""

__version__ = "0.2.0"
