"""/v1/templates as runpodctl 2.7.2 calls it (`internal/api/templates.go`: ListTemplates,
GetTemplate, CreateTemplate with TemplateCreateRequest, UpdateTemplate with
TemplateUpdateRequest, DeleteTemplate).

A REST input becomes the GraphQL saveTemplate input over the template's current values (a
PATCH changes only what it names) and is validated by the console's template form
(api.graphql.inputs.template_form), then written through pods.services (audited)."""

import shlex

from django.db.models import Q
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from api.authentication import person
from api.graphql import wire
from api.graphql.resolvers import _id, _template_values
from api.runpod_rest import shapes
from api.runpod_rest.base import CRUD, RestViewSet, checked
from pods import services
from pods.models import PodTemplate

FIELDS = {
    "name": str,
    "imageName": str,
    "isServerless": bool,
    "isPublic": bool,
    "category": str,
    "ports": list,
    "env": dict,
    "containerDiskInGb": int,
    "volumeInGb": int,
    "volumeMountPath": str,
    "dockerEntrypoint": list,
    "dockerStartCmd": list,
    "containerRegistryAuthId": str,
    "readme": str,
}


def graphql_input(data: dict) -> dict:
    """A TemplateCreateInput / TemplateUpdateInput as saveTemplate's input (what it names)."""
    data = checked(data, FIELDS)
    if data.get("dockerEntrypoint"):
        raise ValidationError("dockerEntrypoint: not offered here: put it in dockerStartCmd.")
    if data.get("containerRegistryAuthId"):
        raise ValidationError(
            "containerRegistryAuthId: templates name no registry login here; choose one when "
            "you deploy."
        )
    if data.get("category") not in (None, "NVIDIA", "CPU"):
        raise ValidationError("category: NVIDIA or CPU (AMD GPUs are not offered here).")
    same = ("name", "imageName", "isServerless", "isPublic", "containerDiskInGb", "volumeInGb")
    result = {name: data[name] for name in (*same, "volumeMountPath", "readme") if name in data}
    if data.get("ports") is not None:
        result["ports"] = ",".join(data["ports"])
    if data.get("env") is not None:
        result["env"] = [{"key": k, "value": v} for k, v in data["env"].items()]
    if data.get("dockerStartCmd") is not None:
        result["dockerArgs"] = shlex.join(data["dockerStartCmd"])
    return result


class TemplateViewSet(RestViewSet):
    capabilities = CRUD

    def _own(self, template_id: str) -> PodTemplate:
        found = PodTemplate.objects.filter(team=self.team, public_id=_id(template_id)).first()
        if found is None:
            raise NotFound(f"Template {str(template_id)[:40]!r} not found.")
        return found

    def list(self, request):
        """The team's own templates (serverless ones too); RunPod's official ones and other
        teams' public ones when asked (?includeRunpodTemplates, ?includePublicTemplates)."""
        wanted = Q(team=self.team)
        if self.flag("includeRunpodTemplates"):
            wanted |= Q(team=None)
        if self.flag("includePublicTemplates"):
            wanted |= Q(is_public=True)
        templates = PodTemplate.objects.visible_to(self.team).filter(wanted)
        return Response([shapes.template(t) for t in templates.order_by("name", "pk")])

    def retrieve(self, request, template_id: str):
        found = PodTemplate.objects.visible_to(self.team).filter(public_id=_id(template_id))
        if not found:
            raise NotFound(f"Template {str(template_id)[:40]!r} not found.")
        return Response(shapes.template(found[0]))

    def create(self, request):
        data = graphql_input(self.body())
        values = _template_values(data, None)
        saved = services.create_template(actor=person(self.request), team=self.team, **values)
        return Response(shapes.template(saved), status=status.HTTP_201_CREATED)

    def partial_update(self, request, template_id: str):
        found = self._own(template_id)
        data = {**wire.template(found), **graphql_input(self.body())}
        del data["portsConfig"]  # labels stay on the ports that stay
        values = _template_values(data, found)
        saved = services.update_template(actor=person(self.request), template=found, **values)
        return Response(shapes.template(saved))

    update = partial_update  # POST /templates/{id}/update, RunPod's alias of PATCH

    def destroy(self, request, template_id: str):
        services.delete_template(actor=person(self.request), template=self._own(template_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
