"""Replay of recorded markets: the compiled event core and the store-to-arrays loading."""
