"""POST /graphql: RunPod's GraphQL API, as runpod-python and runpodctl call it.

Authenticated like /api/v1/ (a key as `Bearer <key>`, a raw `Authorization: <key>` or
`?api_key=<key>`; a browser session with `?team=<slug>`, CSRF-checked). A bad key answers 401,
which the SDK turns into AuthenticationError; everything else answers 200 with GraphQL's
`errors` array, which the SDK raises as QueryError. Read-only keys may query, not mutate
(refused per mutation in the resolvers, since every GraphQL request is a POST)."""

import logging
from pathlib import Path

from ariadne import graphql_sync, load_schema_from_path, make_executable_schema
from graphql import FieldNode, GraphQLError, ValidationContext, ValidationRule
from rest_framework import authentication, exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.access import request_api_key
from api.authentication import ApiKeyAuthentication
from api.graphql.endpoints import OBJECTS as ENDPOINT_OBJECTS
from api.graphql.inputs import InputError
from api.graphql.resolvers import OBJECTS
from api.throttling import ApiKeyRateThrottle
from console import safejson
from teams.audit import current_api_key

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
type_defs = load_schema_from_path(str(SCHEMA_PATH))
schema = make_executable_schema(type_defs, *OBJECTS, *ENDPOINT_OBJECTS)

# What a refusal is called in `errors[].extensions.code`.
ERROR_CODES = {
    InputError: "BAD_USER_INPUT",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.PermissionDenied: "FORBIDDEN",
}


class GraphqlKeyAuthentication(ApiKeyAuthentication):
    """ApiKeyAuthentication without its unsafe-method check: every GraphQL call is a POST,
    so a read-only key is refused by each mutation instead."""

    refuses_read_only_writes = False


def format_error(error: GraphQLError, debug: bool = False) -> dict:
    """Refusals keep their message; anything unexpected is logged and answered generically, so
    no internal detail reaches the caller."""
    formatted = error.formatted
    original = error.original_error
    if original is None:
        return formatted
    code = next((c for kind, c in ERROR_CODES.items() if isinstance(original, kind)), None)
    if code is None:
        logger.error("GraphQL resolver failed", exc_info=original)
        formatted["message"] = "Internal server error."
        code = "INTERNAL_SERVER_ERROR"
    elif isinstance(original, exceptions.APIException):
        formatted["message"] = str(original.detail)
    formatted["extensions"] = {"code": code}
    return formatted


MAX_QUERY_CHARS = 20_000
MAX_FIELDS = 300


class FieldBudget(ValidationRule):
    """At most MAX_FIELDS selected fields per document: aliases would otherwise let one
    request ask for the pod list a thousand times. The SDK's largest document has ~40."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.fields = 0

    def enter_field(self, node: FieldNode, *_args) -> None:
        self.fields += 1
        if self.fields == MAX_FIELDS + 1:
            self.report_error(GraphQLError(f"At most {MAX_FIELDS} fields in one document."))


def _body(request: Request) -> dict | None:
    try:
        data = safejson.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


class GraphqlView(APIView):
    """Throttled by the REST API's ApiKeyRateThrottle (the default class): one count per key
    across /api/v1/ and /graphql."""

    authentication_classes = [GraphqlKeyAuthentication, authentication.SessionAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [ApiKeyRateThrottle]
    renderer_classes = [JSONRenderer]
    http_method_names = ["post", "options"]

    def handle_exception(self, exc: Exception) -> Response:
        """Over the limit: 429 with Retry-After and the refusal in GraphQL's `errors` array,
        which the SDK raises as QueryError (the REST envelope's `errors` is an object)."""
        response = super().handle_exception(exc)
        if isinstance(exc, exceptions.Throttled):
            error = {"message": str(exc.detail), "extensions": {"code": "RATE_LIMITED"}}
            response.data = {"errors": [error]}
        return response

    def post(self, request: Request) -> Response:
        data = _body(request)
        if data is None or not isinstance(data.get("query"), str):
            error = {"message": "Send a JSON object with a `query` string."}
            return Response({"errors": [error]})
        if len(data["query"]) > MAX_QUERY_CHARS:
            error = {"message": f"A document is at most {MAX_QUERY_CHARS} characters."}
            return Response({"errors": [error]})
        if data.get("variables") is not None and not isinstance(data["variables"], dict):
            return Response({"errors": [{"message": "`variables` must be an object."}]})
        key = request_api_key(request)
        # Every audit event the services write during this call names the key that made it.
        token = current_api_key.set(key.public_id if key else None)
        try:
            _, result = graphql_sync(
                schema,
                data,
                context_value={"request": request},
                error_formatter=format_error,
                validation_rules=[FieldBudget],
                debug=False,
            )
        finally:
            current_api_key.reset(token)
        return Response(result)
