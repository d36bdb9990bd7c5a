"""The console's pages, one module each with its routes, its guards and its typed data."""
