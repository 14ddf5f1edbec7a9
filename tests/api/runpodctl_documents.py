"""The GraphQL documents runpodctl 2.7.2 sends for pods, GPU types, data centres, templates,
network volumes and the user (runpod/runpodctl at 2e2df89e, `api/*.go` and `internal/api/*.go`),
whitespace collapsed. Serverless endpoints and the hub/model-repo calls are left out (the
serverless issue; out of scope)."""

RUNPODCTL_DOCUMENTS = [
    # api/cloud.go
    (
        "query LowestPrice($input: GpuLowestPriceInput!) { gpuTypes { lowestPrice(input: "
        "$input) { gpuName gpuTypeId minimumBidPrice uninterruptablePrice minMemory minVcpu } "
        "} }"
    ),
    # api/endpoint.go
    (
        "mutation saveTemplate($input: SaveTemplateInput) { saveTemplate(input: $input) { "
        "advancedStart containerDiskInGb dockerArgs env { key value } id imageName name ports "
        "readme startJupyter startScript startSsh volumeInGb volumeMountPath } }"
    ),
    # api/pod.go
    (
        "query myPods { myself { pods { id containerDiskInGb costPerHr desiredStatus "
        "dockerArgs dockerId env gpuCount imageName lastStatusChange machineId memoryInGb "
        "name podType port ports uptimeSeconds vcpuCount volumeInGb volumeMountPath machine { "
        "gpuDisplayName location } runtime { ports { ip isIpPublic privatePort publicPort "
        "PortType: type } } } } }"
    ),
    # api/pod.go
    (
        "mutation createPod($input: PodFindAndDeployOnDemandInput!) { "
        "podFindAndDeployOnDemand(input: $input) { id costPerHr desiredStatus "
        "lastStatusChange } }"
    ),
    # api/pod.go
    (
        "mutation stopPod($podId: String!) { podStop(input: {podId: $podId}) { id "
        "desiredStatus lastStatusChange } }"
    ),
    # api/pod.go
    "mutation terminatePod($podId: String!) { podTerminate(input: {podId: $podId}) }",
    # api/pod.go
    (
        "mutation podResume($podId: String!) { podResume(input: {podId: $podId}) { id "
        "costPerHr desiredStatus lastStatusChange } }"
    ),
    # api/pod.go
    (
        "mutation Mutation($podId: String!, $bidPerGpu: Float!, $gpuCount: Int!) { "
        "podBidResume(input: {podId: $podId, bidPerGpu: $bidPerGpu, gpuCount: $gpuCount}) { "
        "id costPerHr desiredStatus lastStatusChange } }"
    ),
    # api/user.go
    "query myself { myself { id pubKey } }",
    # api/user.go
    (
        "mutation Mutation($input: UpdateUserSettingsInput) { updateUserSettings(input: "
        "$input) { id } }"
    ),
    # api/volume.go
    "query getNetworkVolumes { myself { networkVolumes { dataCenterId id name size } } }",
    # internal/api/gpu.go
    "query { gpuTypes { id displayName memoryInGb secureCloud communityCloud } }",
    # internal/api/gpu.go
    (
        "query { dataCenters { id name location gpuAvailability { gpuTypeId displayName "
        "stockStatus } } }"
    ),
    # internal/api/gpu.go
    (
        "query { myself { id email clientBalance currentSpendPerHr spendLimit notifyPodsStale "
        "notifyPodsGeneral notifyLowBalance } }"
    ),
    # internal/api/graphql.go
    (
        "mutation createPod($input: PodFindAndDeployOnDemandInput!) { "
        "podFindAndDeployOnDemand(input: $input) { id name imageName desiredStatus costPerHr "
        "containerDiskInGb volumeInGb volumeMountPath gpuCount memoryInGb vcpuCount ports "
        "lastStatusChange env machine { gpuDisplayName location } } }"
    ),
    # internal/api/graphql.go
    (
        "query myPods { myself { pods { id containerDiskInGb costPerHr desiredStatus "
        "lastStatusChange uptimeSeconds dockerArgs env gpuCount imageName memoryInGb name "
        "podType ports vcpuCount volumeInGb volumeMountPath machine { gpuDisplayName location "
        "} runtime { ports { ip isIpPublic privatePort publicPort type } } } } }"
    ),
    # internal/api/template_port_labels.go
    (
        "mutation UpdateTemplatePortLabels($input: SaveTemplateInput) { saveTemplate(input: "
        "$input) { id } }"
    ),
    # internal/api/template_port_labels.go
    (
        "query GetTemplateForPortLabels { myself { podTemplates { id name imageName "
        "dockerArgs env { key value } ports volumeMountPath volumeInGb containerDiskInGb "
        "containerRegistryAuthId startJupyter startSsh startScript isServerless isPublic "
        "readme advancedStart category } } }"
    ),
    # internal/api/templates.go
    (
        "query PodTemplates($input: PodTemplateInput) { podTemplates(input: $input) { id name "
        "imageName isServerless isPublic isRunpod category containerDiskInGb volumeInGb "
        "volumeMountPath } }"
    ),
    # internal/api/templates.go
    (
        "query GetTemplate($id: String!) { podTemplate(id: $id) { id name imageName "
        "isServerless isPublic isRunpod category ports portsConfig { port name } env { key "
        "value } containerDiskInGb containerRegistryAuthId volumeInGb volumeMountPath readme "
        "} }"
    ),
]
