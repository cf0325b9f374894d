"""The signed-in user's API keys page; static/designer/keys.js does the work through /api/keys/."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def keys_page(request):
    return render(request, "agents/keys.html")
