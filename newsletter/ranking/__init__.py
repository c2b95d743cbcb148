"""Choosing papers for one reader: keyword relevance, recency and popularity, top N."""
