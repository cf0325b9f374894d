"""Long names (200 characters) do not break the layouts at 1280 and 1920 px: the workflow list,
the editor's header, the runs list and the run page stay within the viewport, names are cut with
their full text in a tooltip, and "Delete" / "Remove" buttons sit fully inside their card.
Screenshots go to the test's tmp path for review by eye."""
from __future__ import annotations

import pytest

from engine.actions import do_start_run, trigger_payload
from tests.browser.helpers import linear_definition, open_editor, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# one unbreakable word (the worst case) and one with spaces
LONG = "Quarterly" + "x" * 191
SPACED = ("Reconcile the invoices of every subsidiary " * 5)[:200]
SLACK = 1  # px: sub-pixel rounding


def page_width(page) -> dict:
    return page.evaluate("() => ({scroll: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
                         " inner: window.innerWidth})")


def assert_fits_viewport(page, where):
    w = page_width(page)
    assert w["scroll"] <= w["inner"] and w["body"] <= w["inner"], f"{where}: page is {w} wide"
    # an element past the right edge counts unless an ancestor inside the viewport clips it
    wide = page.evaluate("""() => {
        const clipped = (el) => {
            for (let a = el.parentElement; a; a = a.parentElement) {
                if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= window.innerWidth + 1) return true;
            }
            return false;
        };
        return [...document.querySelectorAll('body *')]
            .filter((el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 1
                              && getComputedStyle(el).position !== 'fixed' && !clipped(el); })
            .slice(0, 5).map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right));
    }""")
    assert not wide, f"{where}: elements past the viewport's right edge: {wide}"


def inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] - SLACK and inner["y"] >= outer["y"] - SLACK
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + SLACK
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + SLACK)


@pytest.mark.parametrize("width", [1280, 1920])
def test_long_names_fit_at(width, signed_in, make_workflow, tmp_path):
    page = signed_in
    definition = linear_definition("action.python")
    long_wf = make_workflow(LONG, definition, "A description that is also long " * 8)
    spaced_wf = make_workflow(SPACED, definition)
    make_workflow("Short", definition)
    run = do_start_run(long_wf, trigger_payload({"n": 1}))
    page.set_viewport_size({"width": width, "height": 900})

    # -- the workflow list
    page.goto("/workflows/")
    page.wait_for_selector(".wf-table tbody tr")
    settle(page)
    page.screenshot(path=str(tmp_path / f"list-{width}.png"), full_page=True)
    assert_fits_viewport(page, "workflow list")
    card = page.locator("#workflow-list").bounding_box()
    for wf in (long_wf, spaced_wf):
        row = page.locator(f"tr[data-id='{wf.pk}']")
        name = row.locator(".wf-name")
        assert name.get_attribute("title") == wf.name
        assert name.evaluate("el => el.scrollWidth > el.clientWidth"), "the long name is cut"
        assert inside(name.bounding_box(), card)
        for action in ("delete", "rename", "export", "runs"):
            box = row.locator(f"[data-action={action}]").bounding_box()
            assert box and inside(box, card), f"{action} of {wf.pk} at {box}, card {card}"
        assert row.locator(".wf-last-run").inner_text().lower() in ("never", "queued")
    assert page.locator(f"tr[data-id='{long_wf.pk}'] .wf-last-run [data-status=queued]").count() == 1
    # every row's height stays one line of name + one of description
    heights = page.locator(".wf-table tbody tr").evaluate_all("rows => rows.map((r) => r.getBoundingClientRect().height)")
    assert max(heights) < 90, heights

    # -- the editor's header
    open_editor(page, long_wf.pk)
    page.screenshot(path=str(tmp_path / f"editor-{width}.png"))
    assert_fits_viewport(page, "editor")
    assert page.locator("#wf-name").get_attribute("title") == LONG
    bar = page.locator(".ed-toolbar").bounding_box()
    for sel in ("#btn-save", "#validation-status", "#btn-run", "#btn-history"):
        assert inside(page.locator(sel).bounding_box(), bar), sel
    # the workflow settings' "Remove variable" button stays inside the panel
    page.click("text=+ Add variable")
    remove = page.locator("[aria-label='Remove variable']").first
    assert inside(remove.bounding_box(), page.locator("#props").bounding_box())

    # -- the runs list and the run page
    page.goto(f"/workflows/{long_wf.pk}/runs")
    page.wait_for_selector("body[data-ready=true]")
    settle(page)
    page.screenshot(path=str(tmp_path / f"runs-{width}.png"), full_page=True)
    assert_fits_viewport(page, "runs list")
    assert page.locator(".crumbs .crumb-name").get_attribute("title") == LONG
    assert inside(page.locator("#btn-run").bounding_box(), {"x": 0, "y": 0, "width": width, "height": 10_000})

    page.goto(f"/runs/{run.pk}/")
    page.wait_for_selector("#run-status")
    page.wait_for_timeout(500)
    settle(page)
    page.screenshot(path=str(tmp_path / f"run-{width}.png"), full_page=True)
    assert_fits_viewport(page, "run page")
    assert page.locator(".crumbs .crumb-name").get_attribute("title") == LONG
    for sel in ("#btn-rerun", "a.btn:text('Open editor')"):
        assert inside(page.locator(sel).bounding_box(), {"x": 0, "y": 0, "width": width, "height": 10_000}), sel
