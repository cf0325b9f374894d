"""Helpers for the browser tests: signing in, opening the editor, talking to the API."""
from __future__ import annotations

PASSWORD = "correct-horse-battery"


def settle(page, timeout_ms=5000):
    """Wait until the page has no request in flight.

    The live server and the test share one SQLite database, whose in-memory shared cache uses
    table locks: ORM writes in the test while the server answers a request can fail as "locked".
    """
    waited = 0
    while page.pending and waited < timeout_ms:
        page.wait_for_timeout(25)
        waited += 25


def in_module_page(page, live_server, imports, body):
    """Run `body` (the inside of an async JS function; its `return` is the result) on a page of
    the live server, after `imports` (JS lines such as `const m = await import("/static/...")`)."""
    page.goto(f"{live_server.url}/static/designer/app.css")  # any same-origin page
    return page.evaluate(f"async () => {{\n{imports}\n{body}\n}}")


def submit_login(page, username="ada", password=PASSWORD):
    """Sign in through the login form, up to the workflow list's URL (nothing polled with eval,
    so it works under the pages' real CSP too)."""
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/workflows/")


def login(page, username="ada", password=PASSWORD):
    """Sign in through the login form and wait until the workflow list has settled."""
    submit_login(page, username, password)
    page.wait_for_selector(".wf-table, #empty-state")
    settle(page)


def open_editor(page, workflow_id, settled=True):
    """The editor of a workflow, ready and validated; with settled, also with no request in flight
    (pages of a real stack keep following runs: pass settled=False there)."""
    page.goto(f"/workflows/{workflow_id}/edit")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#validation-status:not([data-state=checking])")
    if settled:
        settle(page)


def select_node(page, node_id, wait_form=False):
    """Click a node; first clear the selection so that a wide panel (Python code) does not cover it."""
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    page.wait_for_selector(".settings-form")
    page.click(f".node[data-id={node_id}] .node-name")
    if wait_form:
        page.wait_for_selector(f".props-form[data-node-id={node_id}]")


def api(page, method, path, body=None):
    """Call the REST API from inside the page (session cookie + CSRF header)."""
    return page.evaluate(
        """async ([method, path, body]) => {
            const token = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
            const res = await fetch(path, {method, headers: {"Content-Type": "application/json", "X-CSRFToken": token},
                                          body: body === null ? undefined : JSON.stringify(body)});
            const text = await res.text();
            return {status: res.status, data: text ? JSON.parse(text) : null};
        }""",
        [method, path, body],
    )


def linear_definition(*types, spacing=270):
    """A valid definition: a manual trigger followed by nodes of `types`, chained out → in."""
    from engine.nodes import NODE_TYPES

    nodes = [{"id": "trigger", "type": "trigger.manual", "name": "Manual trigger", "parameters": {},
              "position": {"x": 0, "y": 100}}]
    edges = []
    for i, key in enumerate(types, start=1):
        t = NODE_TYPES[key]
        nid = f"{key.split('.')[-1]}_{i}"
        nodes.append({"id": nid, "type": key, "name": f"{t.label} {i}", "parameters": dict(t.defaults),
                      "position": {"x": spacing * i, "y": 100}})
        edges.append({"source": nodes[-2]["id"], "source_port": NODE_TYPES[nodes[-2]["type"]].outputs[0],
                      "target": nid, "target_port": "in"})
    return {"version": 1, "nodes": nodes, "edges": edges, "settings": {"variables": [], "allowed_hosts": []}}


def definition(page):
    return page.evaluate("JSON.parse(JSON.stringify(window.stepwell.definition))")

