"""The relay (events.md §4): a process of its own that delivers the outbox's events to each sink."""
