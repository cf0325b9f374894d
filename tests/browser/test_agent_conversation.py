"""The run page shows an AI agent step's turns as a conversation (static/designer/agent-conversation.js):
the prompts, the model's text and code, each execution's output and result, and its figures (the
step's produced files, previewed). The step record is written as the worker would store it; the
loop itself is tested on a real stack in tests/engine/test_agent_step.py."""
from __future__ import annotations

import struct
import zlib

from tests.browser.helpers import login


def connection(name: str = "local"):
    """The model connection the agent nodes name (a workflow is not saved without it)."""
    from engine.agent_connections import ModelConnection

    return ModelConnection.objects.get_or_create(name=name, defaults={"base_url": "http://127.0.0.1:9/v1",
                                                                      "model": "scripted"})[0]


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x20\x60\xc0" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_the_run_page_shows_the_agents_conversation(page, user):
    from designer import actions
    from engine.models import Run, StepFile, StepRun
    from engine.validation import empty_definition

    connection()
    d = empty_definition()
    d["nodes"].append({"id": "agent", "type": "action.agent", "name": "Analyst",
                       "parameters": {"connection": "local", "prompt": "Plot x"}, "position": {"x": 300, "y": 160}})
    d["edges"].append({"source": "trigger", "source_port": "out", "target": "agent", "target_port": "in"})
    wf = actions.do_create_workflow(user, "agent run", "", d)
    turns = [
        {"role": "system", "content": "You analyse data."},
        {"role": "user", "content": "Plot x"},
        {"role": "assistant", "content": "Let me plot it.", "code": "x = [1, 2, 3]\nplt.plot(x)\nsum(x)"},
        {"role": "tool", "content": "...", "code": "x = [1, 2, 3]\nplt.plot(x)\nsum(x)", "status": "succeeded",
         "stdout": "plotted\n", "stderr": "", "result": 6, "figures": ["turn1_figure1.png"]},
        {"role": "assistant", "content": "The sum is 6."},
    ]
    run = Run.objects.create(workflow=wf, version=wf.head, payload={}, status="succeeded", started_by=user)
    figure = png(8, 6)
    step = StepRun.objects.create(run=run, node_id="agent", node_type="action.agent", status="succeeded",
                                  output={"answer": "The sum is 6.", "turns": turns},
                                  files=[{"name": "turn1_figure1.png", "size": len(figure), "truncated": False}])
    StepFile.objects.create(step=step, name="turn1_figure1.png", size=len(figure), content=figure)
    login(page)
    page.goto(f"/runs/{run.pk}/#node=agent")
    conv = page.locator("#step-panel .sec-conversation")
    conv.locator("li.agent-turn").first.wait_for()
    assert conv.locator("summary").inner_text() == "Conversation (5 turns)"
    roles = conv.locator("li.agent-turn").evaluate_all("els => els.map(e => e.dataset.role)")
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assistant = conv.locator("li.agent-turn[data-turn='2']")
    assert "Let me plot it." in assistant.inner_text() and "plt.plot(x)" in assistant.locator("pre").inner_text()
    tool = conv.locator("li.agent-turn[data-turn='3']")
    assert "plotted" in tool.inner_text() and "6" in tool.inner_text()
    img = tool.locator("img.agent-figure[data-file='turn1_figure1.png']")
    page.wait_for_function("img => img.complete && img.naturalWidth === 8", arg=img.element_handle())
    assert "The sum is 6." in conv.locator("li.agent-turn[data-turn='4']").inner_text()
    errors = [e for e in page.console_errors if "WebSocket" not in e]   # live_server serves no websockets
    assert not errors, errors


def test_the_editor_offers_the_agent_and_edits_its_prompts_as_text(page, user, make_workflow):
    from engine.validation import empty_definition

    from tests.browser.helpers import definition, open_editor, select_node

    connection()
    d = empty_definition()
    d["nodes"].append({"id": "agent", "type": "action.agent", "name": "Analyst",
                       "parameters": {"connection": "local", "prompt": "Sum {{ trigger.body.xs }}"},
                       "position": {"x": 300, "y": 160}})
    d["edges"].append({"source": "trigger", "source_port": "out", "target": "agent", "target_port": "in"})
    wf = make_workflow("agent editor", d)
    login(page)
    open_editor(page, wf.pk)
    assert page.locator("[data-type='action.agent']").count() >= 1   # in the palette
    select_node(page, "agent", wait_form=True)
    prompt = page.locator("textarea[data-param='prompt']")
    assert prompt.input_value() == "Sum {{ trigger.body.xs }}"
    prompt.fill("Line one\nLine two: {{ trigger.body.xs }}")
    assert definition(page)["nodes"][1]["parameters"]["prompt"] == "Line one\nLine two: {{ trigger.body.xs }}"
    assert page.locator("input[data-param='connection']").input_value() == "local"
