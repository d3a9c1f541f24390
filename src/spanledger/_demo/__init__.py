"""spanledger demo: a simulated month of traffic through the real pipeline, and the stub LLM server it calls."""
