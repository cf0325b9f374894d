"""The starting allow-list for data work: arrays, data frames, plots, dates, spreadsheets, YAML.

Kept modest (about 130 MB installed; numpy, pandas and matplotlib are most of it). scipy
(~100 MB more) and scikit-learn are left for staff to add when someone needs them. The first
runtime is built by `manage.py runtime_build` (or the staff page); this migration only lists.
"""
from django.db import migrations
from packaging.utils import canonicalize_name

DEFAULTS = [
    ("numpy", ">=1.26,<3", "Arrays and numerical computing."),
    ("pandas", ">=2.1,<3", "Data frames (brings python-dateutil, pytz, tzdata)."),
    ("matplotlib", ">=3.8,<4", "Charts; save figures to /mnt/data to return them as files."),
    ("python-dateutil", ">=2.8", "Date parsing and relative deltas."),
    ("pytz", "", "Time zones (also used by pandas)."),
    ("openpyxl", ">=3.1,<4", "Read and write .xlsx spreadsheets (pandas.read_excel)."),
    ("pyyaml", ">=6,<7", "YAML parsing (import yaml)."),
    ("tabulate", "", "Plain-text tables (pandas.DataFrame.to_markdown)."),
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
    dependencies = [("runtimes", "0001_initial")]
    operations = [migrations.RunPython(add_defaults, remove_defaults)]
