"""RunPod's REST API v1 (`https://rest.runpod.io/v1`), as runpodctl 2.7.2 calls it, at /v1/."""
