"""Org files and the per-org settings Patron runs with."""
