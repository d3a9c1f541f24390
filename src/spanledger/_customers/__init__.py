"""Customer profiles: the names, e-mails and plans behind user and tenant ids (issue 17)."""
