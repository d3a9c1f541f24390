"""Billing: statements with markups, imported revenue and margins, and repricing stored calls.

Reads go through the query layer (``_query``: exact windows over the rollups), writes through the store
(``_store``: the rebuild after a repricing); billing's own SQL lives in :mod:`.store`, its tables in
:mod:`.schema` (migration 7). This package's ``__init__`` imports nothing, so the schema can import its
tables without a cycle.
"""
