"""Quoting: Avellaneda–Stoikov and GLFT formulas, online estimators, and the quote builder."""
