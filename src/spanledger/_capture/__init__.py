"""Capture: spans and calls in — attribution, the conventions read, normalisation, the span exporter, OTLP decoding and record_call."""
