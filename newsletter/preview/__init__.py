"""The preview server's parts: what a designer sees of one message, kept apart from HTTP."""
