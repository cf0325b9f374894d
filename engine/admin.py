"""Admin: model connections of AI agent steps (staff set the endpoint, model and API key; the key
is write-only: stored encrypted, never shown again)."""
from django import forms
from django.contrib import admin

from engine.agent_connections import ModelConnection


class ModelConnectionForm(forms.ModelForm):
    base_url = forms.URLField(max_length=500, assume_scheme="https",
                              help_text=ModelConnection._meta.get_field("base_url").help_text)
    api_key = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.")
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = ModelConnection
        fields = ["name", "base_url", "model"]

    def save(self, commit=True):
        obj = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            obj.set_api_key("")
        elif self.cleaned_data.get("api_key"):
            obj.set_api_key(self.cleaned_data["api_key"])
        if commit:
            obj.save()
        return obj


@admin.register(ModelConnection)
class ModelConnectionAdmin(admin.ModelAdmin):
    form = ModelConnectionForm
    list_display = ["name", "base_url", "model", "key_set", "updated"]
    search_fields = ["name", "base_url", "model"]
    readonly_fields = ["created", "updated"]

    @admin.display(boolean=True, description="API key")
    def key_set(self, obj):
        return obj.has_api_key
