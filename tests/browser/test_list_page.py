"""The workflow list: empty state, create, rename, delete, import and export."""
from __future__ import annotations

import json

import pytest

from engine.models import Workflow
from tests.browser.helpers import linear_definition, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def reload_list(page):
    page.reload()
    page.wait_for_selector(".wf-table, #empty-state")
    settle(page)


def test_it_shows_an_empty_state_and_the_users_workflows(signed_in, make_workflow, django_user_model):
    page = signed_in
    assert page.locator("#empty-state").is_visible()
    assert "No workflows yet" in page.locator("#empty-state").inner_text()

    make_workflow("Nightly sync", linear_definition("action.python", "action.compose"), "Copies rows")
    other = django_user_model.objects.create_user("bob", password="x" * 12)
    from designer import actions
    actions.do_create_workflow(other, "Bob's secret")
    reload_list(page)
    rows = page.locator(".wf-table tbody tr")
    assert rows.count() == 1
    text = rows.first.inner_text()
    assert "Nightly sync" in text and "Copies rows" in text and "v1" in text and "3" in text
    assert "just now" in text

    make_workflow("Weekly report")
    reload_list(page)
    page.fill("#wf-search", "rows")
    assert page.locator(".wf-table tbody tr").all_inner_texts()[0].startswith("Nightly sync")
    assert page.locator(".wf-table tbody tr").count() == 1
    page.fill("#wf-search", "zzz")
    assert "No workflow matches" in page.locator(".wf-table").inner_text()


def test_it_renames_a_workflow(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Draft")
    reload_list(page)
    page.click(f"tr[data-id='{w.pk}'] [data-action=rename]")
    page.fill("#wf-dialog-name", "Final name")
    page.fill("#wf-dialog-desc", "Now with a description")
    page.click("dialog button[value=ok]")
    page.wait_for_selector(f"tr[data-id='{w.pk}'] .wf-name:text('Final name')")
    settle(page)
    w.refresh_from_db()
    assert (w.name, w.description) == ("Final name", "Now with a description")


def test_it_deletes_a_workflow_after_confirmation(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Doomed")
    reload_list(page)
    page.click(f"tr[data-id='{w.pk}'] [data-action=delete]")
    page.click("dialog button[value=cancel]")
    assert page.locator(f"tr[data-id='{w.pk}']").count() == 1
    page.click(f"tr[data-id='{w.pk}'] [data-action=delete]")
    assert "cannot be undone" in page.locator("dialog").inner_text()
    page.click("dialog button[value=ok]")
    page.wait_for_selector("#empty-state")
    settle(page)
    assert not Workflow.objects.filter(pk=w.pk).exists()


def test_it_exports_and_imports_a_workflow(signed_in, make_workflow, tmp_path):
    page = signed_in
    w = make_workflow("Round trip", linear_definition("action.python"))
    reload_list(page)
    with page.expect_download() as info:
        page.click(f"tr[data-id='{w.pk}'] [data-action=export]")
    path = tmp_path / "export.json"
    info.value.save_as(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "stepwell.workflow/v1"
    assert doc["definition"] == w.definition

    doc["name"] = "Imported copy"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    with page.expect_file_chooser() as chooser:
        page.click("#btn-import")
    chooser.value.set_files(str(good))
    page.wait_for_selector(".wf-table .wf-name:text('Imported copy')")
    page.wait_for_selector(".toast-success")
    settle(page)
    copy = Workflow.objects.get(name="Imported copy")
    assert copy.definition == w.definition


def test_it_explains_why_an_import_failed(signed_in, tmp_path):
    page = signed_in
    bad = linear_definition("action.python")
    bad["nodes"][1]["type"] = "action.nope"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "stepwell.workflow/v1", "name": "Broken", "definition": bad}))
    page.set_input_files("#import-file", str(path))
    page.wait_for_selector("dialog.import-errors")
    text = page.locator("dialog.import-errors").inner_text()
    assert "bad.json" in text
    assert "$.definition.nodes[1].type" in text
    assert "unknown node type" in text
    page.click("dialog.import-errors button")

    garbage = tmp_path / "garbage.json"
    garbage.write_text("{ nope")
    page.set_input_files("#import-file", str(garbage))
    page.wait_for_selector("dialog.import-errors")
    assert "not valid JSON" in page.locator("dialog.import-errors").inner_text()
    settle(page)
    assert not Workflow.objects.exists()
