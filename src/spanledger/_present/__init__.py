"""Presentation shared by the CLI and the API: number and money formats, JSON and CSV records, tables."""
