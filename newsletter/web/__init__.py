"""`newsletter serve`: sign-up, confirmation, preferences, unsubscribe, feedback and the archive."""
