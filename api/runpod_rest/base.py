"""What every /v1/ view shares: RunPod's conventions on top of the team-scoped viewset.

runpodctl (`internal/api/client.go`) sends `Authorization: Bearer <key>` and JSON bodies,
decodes lists as bare JSON arrays and turns any non-2xx answer into `api error: <body>
(status N)`. So lists are never paginated, and every refusal is `{"error": "...", "status": N}`
(RunPod's error body). Access, the API key's name in audit events and Idempotency-Key come
from api.viewsets.TeamScopedViewSet, the base of /api/v1/ too."""

from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from api.exceptions import envelope
from api.graphql.inputs import InputError
from api.viewsets import TeamScopedViewSet
from pods.services import PodError

TRUE = {"true", "1", "yes"}
# A resource's actions as on /api/v1/: Basic reads, Dev writes.
CRUD = {
    "list": "use",
    "retrieve": "use",
    "create": "deploy",
    "partial_update": "deploy",
    "update": "deploy",
    "destroy": "deploy",
}


def rest_exception_handler(exc, context) -> Response | None:
    if isinstance(exc, (InputError, PodError)):
        exc = ValidationError(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's 500, never a traceback in JSON
    api_exc = exc if isinstance(exc, APIException) else APIException(str(exc))
    response.data = {"error": envelope(api_exc)["message"], "status": response.status_code}
    return response


class JsonBody(JSONParser):
    """JSON, where nesting too deep for Python's decoder is bad input, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


class RestViewSet(TeamScopedViewSet):
    """A /v1/ resource. Subclasses set `capabilities` per action, as on /api/v1/."""

    pagination_class = None
    parser_classes = [JsonBody]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return rest_exception_handler

    def body(self) -> dict:
        """The JSON body, which must be an object (runpodctl sends `null` for none)."""
        data = self.request.data
        if data is None or data == {}:
            return {}
        if not isinstance(data, dict):
            raise ValidationError("The body must be a JSON object.")
        return data

    def flag(self, name: str) -> bool:
        return self.request.query_params.get(name, "").lower() in TRUE


def checked(data: dict, types: dict[str, type | tuple]) -> dict:
    """`data` with each field of `types` of its JSON type (lists of strings, objects of strings
    where the type is list or dict); an unknown field or a wrong type is refused by name, so a
    typo never passes as "not given"."""
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise ValidationError(f"{unknown[0]}: not a field of this request.")
    for name, value in data.items():
        if value is not None and not _of_type(value, types[name]):
            raise ValidationError(f"{name}: {_type_name(types[name])} expected.")
    return data


def _of_type(value, wanted) -> bool:
    if wanted is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if wanted is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if wanted is dict:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, wanted)


def _type_name(wanted) -> str:
    names = {int: "a whole number", str: "a string", bool: "true or false"}
    names |= {list: "an array of strings", dict: "an object of strings"}
    return names.get(wanted, "a number")
