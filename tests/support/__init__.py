"""Test doubles shipped with the test suite (a ClickHouse HTTP endpoint backed by the real chDB engine)."""
