"""The designer app has no models of its own: workflows and their versions are the engine's
(`engine.models.Workflow`, `engine.models.WorkflowVersion`). Their tables keep the names they had
when they lived here (designer_workflow, designer_workflowversion)."""
