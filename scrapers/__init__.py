"""Fetching, archiving and the record model: the I/O edges of schedwatch."""
