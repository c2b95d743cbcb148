"""Runs the stages together: one issue's papers, one subscriber's message, a whole send."""
