"""Privacy and data lifecycle: forgetting a user, pseudonymous ids, retention, content redaction, and keeping
spanledger's baggage keys out of requests to third parties."""
