"""The API's one error shape: `{"code": ..., "message": ..., "errors": {field: [messages]}}`.

Every refusal DRF raises (validation, 401/403/404, throttling, bad JSON) goes through
`exception_handler`, so clients parse one shape whatever went wrong."""

from rest_framework import status
from rest_framework.exceptions import APIException, ErrorDetail, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

NON_FIELD = "non_field_errors"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "This request conflicts with another."


class Unprocessable(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "unprocessable"
    default_detail = "This request cannot be processed."


def _messages(detail) -> list[str]:
    if isinstance(detail, dict):
        return [f"{k}: {m}" for k, v in detail.items() for m in _messages(v)]
    if isinstance(detail, list):
        return [m for item in detail for m in _messages(item)]
    return [str(detail)]


def field_errors(detail) -> dict[str, list[str]]:
    """A ValidationError's detail as {field: [messages]}; nested details are flattened into
    their field's list, and a bare list becomes non_field_errors."""
    if not isinstance(detail, dict):
        return {NON_FIELD: _messages(detail)}
    return {str(field): _messages(value) for field, value in detail.items()}


def _code(exc: APIException) -> str:
    detail = exc.detail
    if isinstance(detail, ErrorDetail) and detail.code:
        return str(detail.code)
    return exc.default_code


def envelope(exc: APIException) -> dict:
    if isinstance(exc, ValidationError):
        errors = field_errors(exc.detail)
        first = next(iter(errors.values()), ["Invalid input."])
        return {"code": "invalid", "message": first[0], "errors": errors}
    return {"code": _code(exc), "message": " ".join(_messages(exc.detail)), "errors": {}}


def exception_handler(exc, context) -> Response | None:
    """DRF's handler (it turns Http404 and Django's PermissionDenied into API exceptions and
    keeps headers such as Retry-After and WWW-Authenticate), with our body."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling, never a traceback in JSON
    if not isinstance(exc, APIException):
        exc = APIException(detail=response.data.get("detail", ""), code="error")
        exc.default_code = {404: "not_found", 403: "permission_denied"}.get(
            response.status_code, "error"
        )
    response.data = envelope(exc)
    return response
