"""Loyalty: programmes and slabs, the points ledger, and the rewards of a registration."""
