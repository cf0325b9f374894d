"""Admin for the allow-list and runtimes. Every change goes through `runtimes.actions`, so the
admin and the staff page (/runtimes/) behave the same (including requesting a build)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from packaging.utils import canonicalize_name

from runtimes import actions
from runtimes.models import AllowedPackage, Runtime


class AllowedPackageForm(forms.ModelForm):
    wheel = forms.FileField(required=False, help_text="Optional: upload a .whl instead of using the package index.")

    class Meta:
        model = AllowedPackage
        fields = ["name", "specifier", "enabled", "notes"]

    def clean(self):
        data = super().clean()
        upload = data.get("wheel")
        if upload is not None:
            self._wheel_bytes = upload.read()
            from runtimes.wheels import WheelError, validate_wheel

            try:
                info = validate_wheel(upload.name, self._wheel_bytes, actions.max_wheel_bytes())
            except WheelError as exc:
                raise forms.ValidationError({"wheel": str(exc)}) from None
            data["name"] = info.name
            self.instance.name = info.name
            return data
        if not data.get("name"):
            raise forms.ValidationError({"name": "Enter a distribution name or upload a wheel."})
        try:
            data["name"] = actions.check_name(data["name"])
            data["specifier"] = actions.check_specifier(data.get("specifier", ""))
        except actions.PackageError as exc:
            raise forms.ValidationError(str(exc)) from None
        if not self.instance.pk and AllowedPackage.objects.filter(normalized=canonicalize_name(data["name"])).exists():
            raise forms.ValidationError({"name": f"{data['name']} is already on the list; edit that entry instead."})
        return data


@admin.register(AllowedPackage)
class AllowedPackageAdmin(admin.ModelAdmin):
    form = AllowedPackageForm
    list_display = ["name", "specifier", "source", "enabled", "wheel_filename", "added_by", "added"]
    list_filter = ["enabled", "source"]
    search_fields = ["name", "normalized", "notes", "wheel_filename"]
    readonly_fields = ["source", "wheel_filename", "wheel_sha256", "wheel_size", "added_by", "added", "updated"]
    actions = ["enable", "disable", "rebuild"]

    def get_fields(self, request, obj=None):
        fields = ["name", "specifier", "enabled", "notes", "wheel"]
        return fields + (self.readonly_fields if obj else [])

    def save_model(self, request, obj, form, change):
        wheel = form.cleaned_data.get("wheel")
        try:
            if wheel is not None:
                saved = actions.do_upload_wheel(wheel.name, form._wheel_bytes, user=request.user,
                                                notes=form.cleaned_data.get("notes", ""))
                obj.pk = saved.pk
            elif not change:
                saved = actions.do_add_package(obj.name, obj.specifier, notes=obj.notes, user=request.user,
                                               enabled=obj.enabled)
                obj.pk = saved.pk
            else:
                stored = AllowedPackage.objects.get(pk=obj.pk)
                actions.do_update_package(stored, user=request.user, enabled=obj.enabled,
                                          specifier=obj.specifier, notes=obj.notes)
        except actions.PackageError as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_model(self, request, obj):
        actions.do_remove_package(obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for pkg in list(queryset):
            actions.do_remove_package(pkg, user=request.user, rebuild=False)
        actions.do_request_build(user=request.user, reason="removed packages in the admin")

    @admin.action(description="Enable selected packages (and rebuild)")
    def enable(self, request, queryset):
        for pkg in queryset:
            actions.do_update_package(pkg, user=request.user, enabled=True)

    @admin.action(description="Disable selected packages (and rebuild)")
    def disable(self, request, queryset):
        for pkg in queryset:
            actions.do_update_package(pkg, user=request.user, enabled=False)

    @admin.action(description="Build a new runtime from the enabled packages")
    def rebuild(self, request, queryset):
        runtime = actions.do_request_build(user=request.user, reason="requested in the admin")
        self.message_user(request, f"Runtime #{runtime.pk} is queued; follow it on the packages page.")


@admin.register(Runtime)
class RuntimeAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "active", "reason", "requested_by", "packages", "created", "finished"]
    list_filter = ["status", "active"]
    search_fields = ["reason", "image_id", "error"]
    actions = ["activate"]
    fields = ["status", "phase", "active", "activated", "reason", "requested_by", "error", "image_id",
              "layer_dir", "image_path", "size_bytes", "reused", "lock_table", "modules", "requested",
              "log_pre", "created", "started", "finished", "page_link"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="distributions")
    def packages(self, obj):
        return len(obj.lock)

    @admin.display(description="lock")
    def lock_table(self, obj):
        rows = "".join(
            format_html("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", p["name"], p["version"],
                        "requested" if p.get("requested") else "dependency")
            for p in obj.lock)
        return format_html("<table>{}</table>", mark_safe(rows)) if rows else "-"

    @admin.display(description="log")
    def log_pre(self, obj):
        return format_html('<pre style="max-height:480px;overflow:auto;white-space:pre-wrap">{}</pre>', obj.log)

    @admin.display(description="staff page")
    def page_link(self, obj):
        return format_html('<a href="{}#runtime-{}">Open on the packages page</a>', reverse("runtimes-page"), obj.pk)

    @admin.action(description="Activate the selected runtime (roll back or forward)")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one runtime to activate.", messages.ERROR)
            return
        try:
            actions.do_activate(queryset.get())
        except actions.PackageError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, "Activated: new executions use it from now on.")
