"""Servers, fixtures and sample builders that test modules share (tests never import each other)."""
