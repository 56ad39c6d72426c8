"""Quoting parameters (defined with the settings in ``flashmm.config.quoting``)."""

from flashmm.config.quoting import MODE_SCALES, Mode, QuoteModel, QuoteParams

__all__ = ["MODE_SCALES", "Mode", "QuoteModel", "QuoteParams"]
