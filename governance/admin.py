"""Admin: audit events are read-only (no add, change or delete); the policy is edited on /policy/."""
from django.contrib import admin

from governance.audit import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("id", "created", "kind", "actor", "workflow_id", "run_id", "step_id")
    list_filter = ("kind",)
    search_fields = ("actor",)
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
