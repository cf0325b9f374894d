"""HTTP clients in the starting allow-list, so that the usual client code works with code egress
(the workflow's allowed hosts, through the sandbox's proxy): requests and httpx. Their
dependencies come with them in every build's lock (requests: urllib3, idna, charset-normalizer,
certifi; httpx: httpcore, h11, anyio, sniffio, idna, certifi). Like 0002, this only lists:
`manage.py runtime_build --if-missing` (run by `make image`) builds when the allow-list differs
from the active runtime's.
"""
from django.db import migrations
from packaging.utils import canonicalize_name

DEFAULTS = [
    ("requests", ">=2.31,<3", "HTTP client (brings urllib3, idna, charset-normalizer, certifi); "
                              "reaches only the workflow's allowed hosts."),
    ("httpx", ">=0.27,<1", "HTTP client, sync and async (brings httpcore, h11, anyio); reaches "
                           "only the workflow's allowed hosts."),
]


def add_defaults(apps, schema_editor):
    AllowedPackage = apps.get_model("runtimes", "AllowedPackage")
    for name, spec, notes in DEFAULTS:
        AllowedPackage.objects.get_or_create(
            normalized=canonicalize_name(name),
            defaults={"name": name, "specifier": spec, "notes": notes, "enabled": True, "source": "index"},
        )


def remove_defaults(apps, schema_editor):
    AllowedPackage = apps.get_model("runtimes", "AllowedPackage")
    AllowedPackage.objects.filter(
        normalized__in=[canonicalize_name(n) for n, _, _ in DEFAULTS], added_by__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("runtimes", "0002_default_packages")]
    operations = [migrations.RunPython(add_defaults, remove_defaults)]
