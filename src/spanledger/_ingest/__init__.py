"""Ingest: every accepted LLM call goes dedup → price → bound check → spool → flusher → store, once.

``pipeline`` (the unit with ``submit``), ``flusher`` (inserts, classifies store errors, bisects refused
blocks), ``backlog`` + ``spool`` (crash-safe, fsync'd), ``quarantine`` (calls set aside, replayable),
``codec`` (columns ⇄ bytes, column bounds), ``metrics`` (OpenTelemetry counters, one set per process).
"""
