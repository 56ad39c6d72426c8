"""Benchmarks: ``make bench`` runs them and writes one flat JSON object of figures."""
