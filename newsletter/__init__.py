"""Research-paper digest newsletters: rank per subscriber, render, deliver exactly once."""

__version__ = "0.1.0"
