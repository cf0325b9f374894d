"""A file a Python step writes in a subdirectory is kept as `sub/a.png`: the run detail answers
200 (it answered 500 when the file route could not hold a slash) and the file is served."""


def test_a_file_in_a_subdirectory_is_listed_and_served(stack, wf):
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("write", "action.python", {"code": "import os\nos.makedirs('/mnt/data/sub/deeper')\n"
                                                    "open('/mnt/data/sub/a.png', 'wb').write(b'PNG1')\n"
                                                    "open('/mnt/data/sub/deeper/b.txt', 'w').write('b')\n"
                                                    "result = 'written'"})],
        [wf.edge("trigger", "write")]))
    run_id = api.start(w["id"])["id"]
    run = api.wait(run_id)
    status, _body, _headers = api.call("GET", f"/api/runs/{run_id}/", raw=True)
    assert status == 200
    step = next(s for s in run["steps"] if s["node_id"] == "write")
    assert step["status"] == "succeeded", step
    files = {f["name"]: f for f in step["files"]}
    assert set(files) == {"sub/a.png", "sub/deeper/b.txt"}, files
    url = files["sub/a.png"]["url"]
    assert url == f"/api/runs/{run_id}/steps/{step['id']}/files/sub/a.png"
    status, content, _headers = api.call("GET", url, raw=True)
    assert status == 200 and content == b"PNG1"
    status, content, _headers = api.call("GET", files["sub/deeper/b.txt"]["url"], raw=True)
    assert status == 200 and content == b"b"
    assert api.call("GET", url.replace("sub/a.png", "sub/../a.png"), raw=True)[0] == 404
    assert stack.api("bob").call("GET", url, raw=True)[0] == 404
