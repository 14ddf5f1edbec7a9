"""RunPod-compatible GraphQL at /graphql (schema-first, ariadne)."""
