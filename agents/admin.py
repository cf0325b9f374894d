"""Staff change a key's quotas here (the key itself is never shown, only its prefix), and the
code-interpreter session pools (audited through agents.pool_actions)."""
from django.contrib import admin

from agents import pool_actions
from agents.models import ApiKey, PoolSession, SessionPool


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


@admin.register(SessionPool)
class SessionPoolAdmin(admin.ModelAdmin):
    list_display = ("name", "max_sessions", "memory_mib", "timeout_s", "cooldown_s", "runtime", "created")
    fields = ("name", "max_sessions", "memory_mib", "timeout_s", "cooldown_s", "allowed_hosts", "runtime")

    def save_model(self, request, obj, form, change):
        before = pool_actions.values(SessionPool.objects.get(pk=obj.pk)) if change else None
        pool_actions.save(obj, request.user, before)

    def delete_model(self, request, obj):
        pool_actions.delete(obj, request.user)

    def delete_queryset(self, request, queryset):
        for pool in queryset:
            pool_actions.delete(pool, request.user)


@admin.register(PoolSession)
class PoolSessionAdmin(admin.ModelAdmin):
    list_display = ("pool", "identifier", "owner", "api_key", "created", "last_used", "ended", "executions")
    list_filter = ("pool", "ended")
    search_fields = ("identifier", "owner__username")
    exclude = ("sandbox_key",)   # the sandbox's name of the VM: never shown
    readonly_fields = ("pool", "identifier", "owner", "api_key", "created", "last_used", "ended", "executions",
                       "busy_until")

    def has_add_permission(self, request):
        return False
