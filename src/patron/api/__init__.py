"""The HTTP edge: routes, JSON and XML codecs, authentication and the response envelope."""
