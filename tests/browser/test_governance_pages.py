"""In Chromium: the staff audit page (filters, detail with its hash check, a step's link from the
run page) and the policy page (a change is saved and shows up as an audit event)."""
from __future__ import annotations

import pytest

from governance import actions
from governance.audit import AuditEvent
from governance.policies import Policy
from tests.browser.helpers import PASSWORD, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_user("boss", password=PASSWORD, is_staff=True)


def test_audit_page_filters_and_shows_an_event(page, boss):
    actions.record("run.started", actor="alice", workflow=5, run=9, payload={"trigger": "manual"})
    actions.record("package.added", actor="boss", payload={"name": "numpy"})
    actions.record_execution(code="result = 1", inputs={}, output=1, stdout="", stderr="", status="succeeded",
                             sandbox={"driver": "process"}, workflow=5, run=9, step=77, node_id="py", actor="alice")
    login(page, "boss")
    page.click("nav >> text=Audit")
    page.wait_for_selector("#audit-table")
    assert page.locator("#audit-table tbody tr").count() == 4        # with boss's own login
    page.fill("input[name=kind]", "package.*")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url("**kind=package.*")
    rows = page.locator("#audit-table tbody tr")
    assert rows.count() == 1 and "package.added" in rows.inner_text()
    page.goto("/audit/?step=77")
    page.click("#audit-table tbody tr a >> nth=0")
    page.wait_for_selector("#event-payload")
    assert page.locator("#event-kind").inner_text() == "execution"
    assert page.locator("#hash-ok").is_visible()
    assert '"code": "result = 1"' in page.locator("#event-payload").inner_text()
    assert not page.console_errors


def test_policy_page_saves_and_is_audited(page, boss):
    login(page, "boss")
    page.click("nav >> text=Policy")
    page.wait_for_selector("#policy-form")
    page.fill("#id_max_timeout_s", "45")
    page.fill("#id_egress_ceiling", "api.example.com\n*.corp.example")
    page.uncheck("#id_allow_process_driver")
    page.click("#policy-save")
    page.wait_for_selector("#policy-message")
    policy = Policy.objects.get(pk=1)
    assert (policy.max_timeout_s, policy.egress_ceiling, policy.allow_process_driver) == (
        45, ["api.example.com", "*.corp.example"], False)
    assert page.input_value("#id_max_timeout_s") == "45"
    page.fill("#id_egress_ceiling", "https://bad.example.com/x")
    page.click("#policy-save")
    page.wait_for_selector(".field-error")
    assert "without a scheme" in page.locator(".field-error").inner_text()
    page.goto("/audit/?kind=policy.changed")
    assert page.locator("#audit-table tbody tr").count() == 1
    assert AuditEvent.objects.filter(kind="policy.changed", actor="boss").count() == 1
    assert not page.console_errors


def test_a_normal_user_has_no_audit_pages(page, user):
    login(page)
    assert page.locator("nav >> text=Audit").count() == 0
    page.goto("/audit/")
    assert "/admin/login/" in page.url


def test_run_page_links_a_step_to_its_audit_event(page, boss):
    from designer import actions as designer_actions
    from engine.models import Run, StepRun
    from engine.validation import empty_definition

    d = empty_definition()
    d["nodes"].append({"id": "py", "type": "action.python", "name": "Py", "parameters": {"code": "result = 1"},
                       "position": {"x": 300, "y": 160}})
    d["edges"].append({"source": "trigger", "source_port": "out", "target": "py", "target_port": "in"})
    wf = designer_actions.do_create_workflow(boss, "linked", "", d)
    run = Run.objects.create(workflow=wf, version=wf.head, payload={}, status="succeeded", started_by=boss)
    step = StepRun.objects.create(run=run, node_id="py", node_type="action.python", status="succeeded",
                                  sandbox={"driver": "process"})
    actions.record_execution(code="result = 1", inputs={}, output=1, stdout="", stderr="", status="succeeded",
                             sandbox={"driver": "process"}, workflow=wf.pk, run=run.pk, step=step.pk, node_id="py")
    login(page, "boss")
    page.goto(f"/runs/{run.pk}/")
    page.click(f"tr[data-step='{step.pk}']")
    link = page.locator("#step-panel a.audit-link")
    assert link.get_attribute("href") == f"/audit/?step={step.pk}"
    link.click()
    page.wait_for_selector("#audit-table")
    rows = page.locator("#audit-table tbody tr")
    assert rows.count() == 1 and "execution" in rows.inner_text()
