"""Patron: an open, self-hostable loyalty-CRM core."""

__version__ = "0.1.0"
