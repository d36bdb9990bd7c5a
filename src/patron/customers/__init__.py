"""The customers' domain: registration, identity changes, searches, look-ups and audits; no HTTP, no SQL."""
