"""Customer registration: reading items, identity resolution and batch outcomes; no HTTP, no SQL."""
