"""The run detail page: owner only, served from the API's data."""
import pytest
from django.test import Client

from designer.actions import do_create_workflow
from engine.actions import do_start_run, trigger_payload


@pytest.mark.django_db
def test_it_shows_the_run_to_its_owner_only(alice, bob, definition):
    wf = do_create_workflow(alice, "page", definition=definition)
    run = do_start_run(wf, trigger_payload({"x": 1}))
    c = Client()
    assert c.get(f"/runs/{run.pk}/").status_code == 302  # sign in first
    c.force_login(bob)
    assert c.get(f"/runs/{run.pk}/").status_code == 404
    c.force_login(alice)
    page = c.get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"Run {run.pk}" in html and "designer/run-detail.js" in html and 'class="badge queued"' in html
    assert c.get(f"/api/runs/{run.pk}/").json()["page"] == f"/runs/{run.pk}/"
