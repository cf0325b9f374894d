"""Output schemas: genson inference merged across runs, served with field-picker paths."""
from engine.inference import fields, merge


def test_it_merges_schemas_of_successive_outputs():
    s = merge(None, {"total": 3, "rows": [{"a": 1}]})
    s = merge(s, {"total": "n/a", "extra": True})
    assert s["properties"]["total"]["type"] == ["integer", "string"]
    assert s["properties"]["rows"]["items"]["properties"]["a"] == {"type": "integer"}
    assert s["required"] == ["total"]
    assert merge(s, {"total": 1})["properties"]["total"]["type"] == ["integer", "string"]


def test_it_flattens_fields_with_expressions():
    s = merge(None, {"total": 3, "rows": [{"a": 1}]})
    got = {f["path"]: (f["expression"], f["type"]) for f in fields("parse", s)}
    assert got[""] == ("{{ steps.parse.output }}", "object")
    assert got["total"] == ("{{ steps.parse.output.total }}", "integer")
    assert got["rows[0].a"] == ("{{ steps.parse.output.rows[0].a }}", "integer")


def test_the_api_serves_merged_schemas(stack, wf):
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("echo", "action.compose", {"value": "{{ trigger.body }}"})],
        [wf.edge("trigger", "echo")]))
    api.wait(api.start(w["id"], {"n": 1, "tags": ["a"]})["id"])
    api.wait(api.start(w["id"], {"n": 1.5, "name": "x"})["id"])
    status, body = api.get(f"/api/workflows/{w['id']}/schemas/")
    assert status == 200
    echo = body["schemas"]["echo"]
    assert echo["properties"]["n"]["type"] == "number"
    assert set(echo["properties"]) == {"n", "tags", "name"} and echo["required"] == ["n"]
    assert body["samples"]["echo"] == 2
    paths = {f["path"]: f["expression"] for f in body["fields"]["echo"]}
    assert paths["tags[0]"] == "{{ steps.echo.output.tags[0] }}"
    assert "trigger" in body["schemas"]
    assert stack.api("bob").get(f"/api/workflows/{w['id']}/schemas/")[0] == 404
