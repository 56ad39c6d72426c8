"""Research reproductions: numerical experiments from the market-making literature."""
