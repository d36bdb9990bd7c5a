"""The API's name for a request-level refusal: `patron.errors.ApiError`, which auth and the console raise too."""

from patron.errors import ApiError

__all__ = ["ApiError"]
