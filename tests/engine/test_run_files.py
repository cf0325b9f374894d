"""Files a Python step leaves in /mnt/data are listed on the step and downloadable by the owner."""


def test_it_keeps_produced_files(stack, wf):
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("write", "action.python", {"code": "open('/mnt/data/report.csv', 'w').write('a,b\\n1,2\\n')\n"
                                                    "result = 'written'"})],
        [wf.edge("trigger", "write")]))
    run = api.wait(api.start(w["id"])["id"])
    step = next(s for s in run["steps"] if s["node_id"] == "write")
    assert step["status"] == "succeeded", step
    assert [(f["name"], f["size"], f["truncated"]) for f in step["files"]] == [("report.csv", 8, False)]
    url = step["files"][0]["url"]
    assert url == f"/api/runs/{run['id']}/steps/{step['id']}/files/report.csv"
    status, content, headers = api.call("GET", url, raw=True)
    assert status == 200 and content == b"a,b\n1,2\n"
    assert "attachment" in headers["Content-Disposition"]
    assert stack.api("bob").call("GET", url, raw=True)[0] == 404
    assert api.call("GET", url.replace("report.csv", "nope.txt"), raw=True)[0] == 404
