"""Market simulator: matching engine, seeded stochastic market, in-process venue."""
