"""REST API under /api/: workflows, versions, validation, node types, schemas."""
