"""Queries: exact windows over the tiers of rollups, rankings, detail, series and the Ledger façade."""
