"""The per-market hot path: book, features, quoting, risk, order manager and the quote loop."""
