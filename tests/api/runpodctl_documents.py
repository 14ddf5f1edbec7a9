"""The GraphQL documents runpodctl 2.7.2 sends for pods, GPU types, data centres, templates,
network volumes, serverless endpoints and the user (runpod/runpodctl at 2e2df89e, `api/*.go` and
`internal/api/*.go`), whitespace collapsed. The hub/model-repo calls are left out (out of
scope)."""

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
    # Serverless endpoints: internal/api/gpu.go (`serverless create` maps GPU types to pools)
    "query { serverlessGpuPools { id gpuTypeIds } }",
    # internal/api/endpoints.go CreateEndpointGQL (`serverless create`)
    (
        "mutation SaveEndpoint($input: EndpointInput!) { saveEndpoint(input: $input) { id name "
        "templateId gpuIds instanceIds computeType networkVolumeId networkVolumeIds { "
        "networkVolumeId dataCenterId } locations idleTimeout scalerType scalerValue workersMin "
        "workersMax gpuCount minCudaVersion executionTimeoutMs flashBootType modelReferences } }"
    ),
    # internal/api/endpoints.go UpdateEndpointModels (`serverless update --model-reference`)
    (
        "mutation SaveEndpoint($input: EndpointInput!) { saveEndpoint(input: $input) { id name "
        "templateId gpuIds gpuCount instanceIds workersMin workersMax locations networkVolumeId "
        "networkVolumeIds { networkVolumeId } idleTimeout scalerType scalerValue "
        "executionTimeoutMs minCudaVersion flashBootType modelReferences } }"
    ),
    # internal/api/endpoints.go and api/endpoint.go (`serverless update --template-id`)
    (
        "mutation Mutation($input: UpdateEndpointTemplateInput) { updateEndpointTemplate(input: "
        "$input) { id templateId } }"
    ),
    # api/endpoint.go (hidden `project deploy`)
    (
        "mutation saveEndpoint($input: EndpointInput!) { saveEndpoint(input: $input) { gpuIds id "
        "idleTimeout locations name networkVolumeId scalerType scalerValue templateId userId "
        "workersMax workersMin } }"
    ),
    # api/endpoint.go (hidden `project deploy`)
    (
        "query Query { myself { endpoints { aiKey gpuIds id idleTimeout name networkVolumeId "
        "locations scalerType scalerValue templateId type userId version workersMax workersMin "
        "workersStandby gpuCount env { key value } createdAt networkVolume { id dataCenterId } } "
        "} }"
    ),
]
