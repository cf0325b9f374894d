"""Condition branches (untaken branch skipped transitively, joins still run) and For each."""


def test_it_follows_the_taken_branch_and_skips_the_other(stack, wf):
    api = stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("check", "control.condition", {"left": "{{ trigger.body.amount }}", "operator": ">", "right": 100}),
         wf.node("big", "action.compose", {"value": "big"}),
         wf.node("big_more", "action.compose", {"value": "{{ steps.big.output }}!"}),
         wf.node("small", "action.compose", {"value": "small"}),
         wf.node("small_more", "action.compose", {"value": "{{ steps.small.output }}!"}),
         wf.node("join", "action.compose", {"value": "joined"})],
        [wf.edge("trigger", "check"), wf.edge("check", "big", "true"), wf.edge("big", "big_more"),
         wf.edge("check", "small", "false"), wf.edge("small", "small_more"),
         wf.edge("big_more", "join"), wf.edge("small_more", "join")])
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"], {"amount": 250})["id"])
    assert run["status"] == "succeeded", run
    st = {s["node_id"]: s["status"] for s in run["steps"]}
    assert st == {"trigger": "succeeded", "check": "succeeded", "big": "succeeded", "big_more": "succeeded",
                  "small": "skipped", "small_more": "skipped", "join": "succeeded"}
    run = api.wait(api.start(w["id"], {"amount": 5})["id"])
    st = {s["node_id"]: s["status"] for s in run["steps"]}
    assert st["big"] == st["big_more"] == "skipped" and st["small_more"] == "succeeded"
    assert st["join"] == "succeeded"


def test_it_runs_for_each_items_and_collects_outputs(stack, wf):
    api = stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("loop", "control.foreach", {"items": "{{ trigger.body.items }}", "concurrency": 2}),
         wf.node("square", "action.python", {"code": "result = inputs['v'] ** 2",
                                             "inputs": {"v": "{{ item }}", "i": "{{ index }}"}}),
         wf.node("label", "action.compose", {"value": "#{{ index }}={{ steps.square.output }}"}),
         wf.node("after", "action.compose", {"value": {"all": "{{ steps.loop.output }}",
                                                       "count": "{{ length(steps.loop.output) }}"}})],
        [wf.edge("trigger", "loop"), wf.edge("loop", "square", "each"), wf.edge("square", "label"),
         wf.edge("loop", "after", "done")])
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"], {"items": [1, 2, 3, 4]})["id"], timeout=60)
    assert run["status"] == "succeeded", run
    after = next(s for s in run["steps"] if s["node_id"] == "after")
    assert after["output"] == {"all": ["#0=1", "#1=4", "#2=9", "#3=16"], "count": 4}
    squares = sorted((s["item_index"], s["output"]) for s in run["steps"] if s["node_id"] == "square")
    assert squares == [(0, 1), (1, 4), (2, 9), (3, 16)]


def test_it_fails_the_loop_when_an_item_fails(stack, wf):
    api = stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("loop", "control.foreach", {"items": "{{ trigger.body.items }}"}),
         wf.node("inv", "action.python", {"code": "result = 1 / inputs['v']", "inputs": {"v": "{{ item }}"}},
                 parent="loop")],
        [wf.edge("trigger", "loop")])
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"], {"items": [1, 0, 2]})["id"], timeout=60)
    assert run["status"] == "failed"
    loop = next(s for s in run["steps"] if s["node_id"] == "loop")
    assert loop["status"] == "failed" and "1 of 3 items failed" in loop["error"]
    assert {s["item_index"]: s["status"] for s in run["steps"] if s["node_id"] == "inv"} == {
        0: "succeeded", 1: "failed", 2: "succeeded"}


def test_independent_branches_run_at_the_same_time(stack, wf):
    api = stack.api()
    sleep = "import time\ntime.sleep(1.5)\nresult = {tag!r}"
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("left", "action.python", {"code": sleep.format(tag="L")}),
         wf.node("right", "action.python", {"code": sleep.format(tag="R")}),
         wf.node("join", "action.compose", {"value": ["{{ steps.left.output }}", "{{ steps.right.output }}"]})],
        [wf.edge("trigger", "left"), wf.edge("trigger", "right"), wf.edge("left", "join"), wf.edge("right", "join")])
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"])["id"], timeout=60)
    assert run["status"] == "succeeded", run
    steps = {s["node_id"]: s for s in run["steps"]}
    assert steps["join"]["output"] == ["L", "R"]
    # they overlapped: each started before the other finished
    assert steps["left"]["started"] < steps["right"]["finished"]
    assert steps["right"]["started"] < steps["left"]["finished"]


def test_a_failing_branch_fails_the_run_after_its_sibling_finishes(stack, wf):
    api = stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("bad", "action.python", {"code": "raise ValueError('left broke')"}),
         wf.node("slow", "action.python", {"code": "import time\ntime.sleep(1)\nresult = 'ok'"}),
         wf.node("after", "action.compose", {"value": "{{ steps.bad.output }}"})],
        [wf.edge("trigger", "bad"), wf.edge("trigger", "slow"), wf.edge("bad", "after")])
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"])["id"], timeout=60)
    assert run["status"] == "failed" and "left broke" in run["error"]
    st = {s["node_id"]: s["status"] for s in run["steps"]}
    assert st == {"trigger": "succeeded", "bad": "failed", "slow": "succeeded"}
