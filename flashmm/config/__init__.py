"""Typed settings: one validated object from a YAML file and FLASHMM_* environment variables."""

from flashmm.config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
