"""Customer search (member-care.md §3): reading a query (`query`) and running it over a store (`run`)."""
