"""Staff change a key's quotas here; the key itself is never shown (only its prefix)."""
from django.contrib import admin

from agents.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    fields = ("user", "name", "prefix", "created", "expires_at", "revoked_at", "last_used_at",
              "max_concurrent_sessions", "executions_per_minute", "session_seconds_per_day")
    readonly_fields = ("user", "name", "prefix", "created", "revoked_at", "last_used_at")

    def has_add_permission(self, request):
        return False   # keys are made on /keys/ or with `manage.py create_api_key` (shown once)
