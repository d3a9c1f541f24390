"""Budgets, rate limits and alerts: what a subject may spend, the guard that stops a call before it is made,
and the alerts that say when spend crosses a line (see ``CONTRIBUTING.md`` for the map of this room)."""
