"""The staff page for packages and runtimes. Data comes from the REST API (runtimes/api.py)."""
from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from runtimes import actions
from runtimes.wheels import platforms


@staff_member_required
def packages_page(request):
    boot = {"maxWheelBytes": actions.max_wheel_bytes(), "python": "CPython 3.11",
            "platforms": ["any", *platforms()[:1], "…", *platforms()[-3:]]}
    return render(request, "runtimes/packages.html", {"boot": boot})
