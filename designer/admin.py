from django.contrib import admin

from engine.models import Workflow, WorkflowVersion


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = ["number", "author", "message", "restored_from", "created"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "head", "updated"]
    search_fields = ["name", "description", "owner__username"]
    list_filter = ["owner"]
    readonly_fields = ["head", "created", "updated"]
    inlines = [VersionInline]
