"""Workflow engine: definition schema, validation, mapping, step execution and runs."""
