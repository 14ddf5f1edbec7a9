"""runpodctl 2.7.2's Go structs for REST v1 answers (`internal/api/*.go`), field by field, and
a decoder with encoding/json's type rules: a /v1/ answer must decode into them.

Go's json.Unmarshal ignores unknown fields, takes `null` for any field (the zero value stays),
and refuses a mismatched JSON type: a string into an int or float64, a fraction into an int,
an object into a []string. `ANY` is an interface{} field."""

import json

ANY = object()
STR, INT, FLOAT, BOOL = "string", "int", "float64", "bool"
STRINGS = "[]string"
STRING_MAP = "map[string]string"
OBJECT = "map[string]interface{}"
ARRAY = "[]interface{}"
VOLUME_REFS = "[]EndpointNetworkVolume"  # bare ids or {networkVolumeId, dataCenterId}

# internal/api/endpoints.go: Endpoint
ENDPOINT = {
    "id": STR,
    "name": STR,
    "templateId": STR,
    "gpuIds": STR,
    "instanceIds": STRINGS,
    "networkVolumeId": STR,
    "networkVolumeIds": VOLUME_REFS,
    "locations": STR,
    "idleTimeout": INT,
    "scalerType": STR,
    "scalerValue": INT,
    "workersMin": INT,
    "workersMax": INT,
    "gpuCount": INT,
    "minCudaVersion": STR,
    "flashboot": BOOL,
    "flashBootType": STR,
    "computeType": STR,
    "executionTimeoutMs": INT,
    "modelReferences": STRINGS,
    "template": OBJECT,
    "workers": ARRAY,
}
# internal/api/pods.go: Pod
POD = {
    "id": STR,
    "name": STR,
    "desiredStatus": STR,
    "createdAt": ANY,
    "lastStatusChange": ANY,
    "uptimeSeconds": ANY,
    "imageName": STR,
    "gpuTypeId": STR,
    "gpuCount": INT,
    "volumeInGb": INT,
    "containerDiskInGb": INT,
    "memoryInGb": INT,
    "vcpuCount": INT,
    "volumeMountPath": STR,
    "ports": STRINGS,
    "costPerHr": FLOAT,
    "machine": OBJECT,
    "runtime": OBJECT,
    "env": STRING_MAP,
}
# internal/api/templates.go: Template (portsConfig: []TemplatePortConfig, objects)
TEMPLATE = {
    "id": STR,
    "name": STR,
    "imageName": STR,
    "isServerless": BOOL,
    "isPublic": BOOL,
    "isRunpod": BOOL,
    "category": STR,
    "ports": STRINGS,
    "portsConfig": ARRAY,
    "dockerEntrypoint": STRINGS,
    "dockerStartCmd": STRINGS,
    "env": STRING_MAP,
    "containerDiskInGb": INT,
    "containerRegistryAuthId": STR,
    "volumeInGb": INT,
    "volumeMountPath": STR,
    "readme": STR,
}
# internal/api/volumes.go: NetworkVolume
NETWORK_VOLUME = {"id": STR, "name": STR, "size": INT, "dataCenterId": STR}
# internal/api/registry.go: ContainerRegistryAuth
REGISTRY_AUTH = {"id": STR, "name": STR, "username": STR}
# internal/api/billing.go: BillingRecord
BILLING_RECORD = {
    "time": STR,
    "amount": FLOAT,
    "timeBilledMs": INT,
    "diskSpaceBilledGb": INT,
    "podId": STR,
    "endpointId": STR,
    "gpuTypeId": STR,
}


def _fits(value, kind) -> bool:
    if value is None or kind is ANY:
        return True
    if kind == STR:
        return isinstance(value, str)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == STRINGS:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == STRING_MAP:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == OBJECT:
        return isinstance(value, dict)
    if kind == ARRAY:
        return isinstance(value, list)
    if kind == VOLUME_REFS:
        return isinstance(value, list) and all(isinstance(v, str | dict) for v in value)
    raise ValueError(kind)


def decode(body: bytes | str, struct: dict, *, many: bool = False):
    """The answer as runpodctl decodes it (a []struct when `many`): the struct's fields only,
    JSON types checked as encoding/json checks them."""
    value = json.loads(body)
    items = value if many else [value]
    assert isinstance(value, list) == many, f"a JSON {'array' if many else 'object'} expected"
    decoded = []
    for item in items:
        assert isinstance(item, dict), item
        for name, kind in struct.items():
            assert _fits(item.get(name), kind), f"{name}: {item.get(name)!r} is no Go {kind}"
        decoded.append({name: item.get(name) for name in struct if name in item})
    return decoded if many else decoded[0]
