"""AI agent (`action.agent`): a chat model (a staff-configured `ModelConnection`, OpenAI-compatible)
answers a prompt and may run Python through one tool, `execute_python`, in a sandbox session held
for this step execution (variables, imports and files carry over between tool calls).

The loop: send the system prompt, the user prompt and the conversation so far (with the tool) to
`<base_url>/chat/completions` (engine/agent_model.py: worker-side, under the workflow's egress
allow-list like the HTTP call step); each tool call runs its `code` in the session and its stdout,
stderr, result and figures go back as the tool message; the step ends when the model answers
without tool calls. A "turn" is one model call: after `max_turns` calls that still asked for the
tool, the step fails ("the model did not answer within N turns").

Tool calls the step cannot run (arguments that are not a JSON object with a `code` string, another
tool's name) fail the step with an error naming the problem; they are not sent back to the model.

The output is {"answer": final text, "turns": [...]} (kept on failure too, with answer null):
turns are {"role": "system"|"user"|"assistant"|"tool", "content", ...}; assistant turns that
called the tool carry `code`, tool turns `code`, `status`, `stdout`, `stderr`, `result` and
`figures` (names of the step's produced files: turn<N>_figure<k>.png).

Sandbox: one session key per step execution (random, unguessable), ended in `finally`. The code
gets no workflow secrets or variables; it may reach only the hosts the node's `allowed_hosts`
lists (each covered by the workflow's list), none by default: model-written code is not trusted
with the workflow's egress. The connection's API key is masked in everything the step returns.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets as pysecrets
import struct
import time
import uuid
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings

from engine.status import Status
from engine.steps import Outcome

log = logging.getLogger("engine.steps.agent")

TOOL_NAME = "execute_python"
TOOL = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Run Python 3 code in a sandboxed interpreter. State (variables, imports, files in "
                       "/mnt/data) persists between calls. Returns stdout, stderr and the value of the last "
                       "expression; an open matplotlib figure is shown to the user as an image.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string", "description": "Python code to run."}},
                       "required": ["code"]},
    },
}
DEFAULT_MAX_TURNS = 8
MAX_TURNS = 50
DEFAULT_MODEL_TIMEOUT_S = 60.0
MAX_MODEL_TIMEOUT_S = 300.0
TOOL_TEXT_CHARS = 20_000          # of each output stream / result sent back to the model
STORED_TEXT_CHARS = 200_000       # of each output stream kept in a tool turn (the step's output)
KEY_MARK = "MODEL_API_KEY"        # the masked key reads ***MODEL_API_KEY***
POLL_S = 0.05


class AgentFailed(Exception):
    """The step fails with this message (the turns so far stay in its output)."""

    def __init__(self, message: str, status: str = Status.FAILED):
        super().__init__(message)
        self.status = status


class Cancelled(Exception):
    pass


def _clip(text: str, limit: int = TOOL_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[: limit // 2] + f"\n... [{len(text) - limit} characters cut] ...\n" + text[-limit // 2:]


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    return None


def _wait(future, ctx, on_cancel=None):
    """The future's result, polling the run's cancel flag; Cancelled once it is set."""
    while True:
        try:
            return future.result(timeout=POLL_S)
        except FutureTimeout:
            if ctx.cancel.is_set():
                if on_cancel is not None:
                    on_cancel()
                raise Cancelled() from None


class Session:
    """The sandbox session of one step execution: every call goes through the code step's path to
    the sandbox (engine.steps.python: the same chooser, service or local driver)."""

    def __init__(self, ctx, params):
        from engine.steps.python import effective_allowed_hosts

        s = ctx.settings
        self.ctx = ctx
        self.key = f"agent-run{ctx.run_id}-{pysecrets.token_hex(16)}"
        timeout = params.get("timeout_s") or s.get("default_timeout_s") or settings.STEPWELL_DEFAULT_STEP_TIMEOUT_S
        memory = params.get("memory_mib") or s.get("default_memory_mib") or settings.STEPWELL_DEFAULT_STEP_MEMORY_MIB
        self.timeout_s = min(float(timeout), settings.STEPWELL_MAX_STEP_TIMEOUT_S)
        self.memory_mib = min(int(memory), settings.STEPWELL_MAX_STEP_MEMORY_MIB)
        self.allowed_hosts = effective_allowed_hosts(s, {"allowed_hosts": params.get("allowed_hosts") or []})
        # held while the model thinks between two tool calls
        self.idle_s = float(params.get("model_timeout_s") or DEFAULT_MODEL_TIMEOUT_S) + 60.0
        self.session_s = 0.0
        self.executions = 0
        self.started = False
        self.last_meta: dict = {}

    def request(self, code: str):
        from sandbox.contract import ExecutionRequest

        return ExecutionRequest(code=code, inputs={}, env={}, allowed_hosts=self.allowed_hosts,
                                isolation="session", reuse_key=self.key, session_idle_s=self.idle_s,
                                timeout_s=self.timeout_s, memory_mib=self.memory_mib)

    def run(self, code: str):
        from engine.steps import python
        from sandbox.contract import ContractError

        try:
            request = self.request(code)
        except (ContractError, TypeError) as exc:
            raise AgentFailed(f"the sandbox refused the session request (does it support sessions?): {exc}") from None
        execution_id = f"run{self.ctx.run_id}-{self.ctx.node.get('id', '')[:40]}-agent-{uuid.uuid4().hex[:12]}"
        self.started = True
        future = python._calls.submit(python._execute, request, execution_id, None)
        try:
            result, session_s = _wait(future, self.ctx, on_cancel=lambda: python._cancel(execution_id))
        except ContractError as exc:
            raise AgentFailed(f"the sandbox refused the session request (does it support sessions?): {exc}") from None
        except Exception as exc:   # SandboxError
            if isinstance(exc, Cancelled):
                raise
            raise AgentFailed(f"sandbox unavailable: {exc}") from None
        self.session_s += session_s
        self.executions += 1
        self.last_meta = dict(result.metadata or {})
        if result.status.value in ("error", "killed"):   # the sandbox's fault, not the code's
            raise AgentFailed(f"the sandbox could not run the model's code ({result.status.value}): "
                              f"{result.message or 'no message'}")
        return result

    def end(self) -> None:
        if not self.started:
            return
        from engine.steps import python

        try:
            end = getattr(python._chooser, "end_session")
            end(self.key)
        except Exception:   # the session's idle timeout ends it anyway
            log.warning("ending sandbox session of run %s", self.ctx.run_id, exc_info=True)


def _tool_turn(code: str, result, turn_no: int, files: list, seen_files: set) -> tuple[dict, str]:
    """(the tool turn recorded, the tool message's text for the model)."""
    from sandbox.contract import OutputFile

    figures, notes = [], []

    def add_figure(data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()   # the same figure as a result and as a file, or
        if digest in seen_files:                    # a file of an earlier call still in /mnt/data
            return
        seen_files.add(digest)
        name = f"turn{turn_no}_figure{len(figures) + 1}.png"
        files.append(OutputFile(name=name, size=len(data), content=data))
        figures.append(name)
        size = _png_size(data)
        notes.append(f"[figure {len(figures)}: a PNG image{f' of {size[0]}x{size[1]} pixels' if size else ''}, "
                     "shown to the user on the run page; you cannot see it, describe it from the code]")

    value = result.result
    if isinstance(value, dict) and value.get("type") == "image" and isinstance(value.get("base64_data"), str):
        try:
            add_figure(base64.b64decode(value["base64_data"]))
        except ValueError:
            pass
        value = None
    for f in result.files:   # figures the code saved (or plt.show() saved) under /mnt/data
        if f.content is not None and f.name.lower().endswith(".png"):
            add_figure(f.content)
    status = result.status.value
    turn = {"role": "tool", "content": None, "code": code, "status": status,
            "stdout": _clip(result.stdout, STORED_TEXT_CHARS), "stderr": _clip(result.stderr, STORED_TEXT_CHARS),
            "result": value, "figures": figures}
    if status != "succeeded" and result.message:
        turn["error"] = result.message
    if status in ("timeout", "out_of_memory"):   # the sandbox destroyed the session's VM
        result_note = "the interpreter was restarted: variables and files from earlier calls are gone"
        turn["error"] = "; ".join(x for x in (turn.get("error"), result_note) if x)
    parts = [f"status: {status}" + (f" ({turn['error']})" if turn.get("error") else "")]
    if result.stdout:
        parts.append("stdout:\n" + _clip(result.stdout))
    if result.stderr:
        parts.append("stderr:\n" + _clip(result.stderr))
    if value is not None:
        parts.append("result:\n" + _clip(json.dumps(value, default=str)))
    parts.extend(notes)
    if len(parts) == 1 and status == "succeeded":
        parts.append("(no output)")
    text = "\n".join(parts)
    turn["content"] = text
    return turn, text


def _parse_code(call: dict) -> tuple[str, str]:
    """(tool call id, code) of one tool call. :raises AgentFailed: a call the step cannot run."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        raise AgentFailed("the model sent a tool call without a function")
    name = fn.get("name")
    if name != TOOL_NAME:
        raise AgentFailed(f"the model called an unknown tool {name!r} (the only tool is {TOOL_NAME!r})")
    raw = fn.get("arguments")
    if isinstance(raw, dict):
        args = raw
    else:
        try:
            args = json.loads(raw if isinstance(raw, str) else "")
        except ValueError as exc:
            raise AgentFailed(f"the model called {TOOL_NAME} with arguments that are not JSON ({exc}): "
                              f"{str(raw)[:200]!r}") from None
    if not isinstance(args, dict):
        raise AgentFailed(f"the model called {TOOL_NAME} with arguments that are not a JSON object: {str(raw)[:200]!r}")
    code = args.get("code")
    if not isinstance(code, str):
        raise AgentFailed(f"the model called {TOOL_NAME} without a `code` string argument "
                          f"(arguments: {sorted(args)})")
    return str(call.get("id") or ""), code


def _connection(name):
    from engine.agent_connections import ModelConnection

    if not isinstance(name, str) or not name:
        raise AgentFailed("connection must name a model connection")
    conn = ModelConnection.objects.filter(name=name).first()
    if conn is None:
        raise AgentFailed(f"no model connection named {name!r} (staff add them in the admin)")
    return conn


def _converse(ctx, params, conn, api_key: str, session: Session, turns: list, files: list) -> str:
    from engine import agent_model
    from engine.steps import python

    max_turns = int(params.get("max_turns") or DEFAULT_MAX_TURNS)
    model_timeout = min(float(params.get("model_timeout_s") or DEFAULT_MODEL_TIMEOUT_S), MAX_MODEL_TIMEOUT_S)
    allowed = list(ctx.settings.get("allowed_hosts") or [])
    messages = []
    system, prompt = params.get("system_prompt"), params.get("prompt")
    if system not in (None, ""):
        text = system if isinstance(system, str) else json.dumps(system)
        messages.append({"role": "system", "content": text})
        turns.append({"role": "system", "content": text})
    text = prompt if isinstance(prompt, str) else json.dumps(prompt)
    messages.append({"role": "user", "content": text})
    turns.append({"role": "user", "content": text})
    seen_files: set = set()
    for turn_no in range(1, max_turns + 1):
        if ctx.cancel.is_set():
            raise Cancelled()
        body = {"model": conn.model, "messages": messages, "tools": [TOOL], "tool_choice": "auto"}
        future = python._calls.submit(agent_model.chat, conn.completions_url(), api_key, body, allowed, model_timeout)
        try:
            answer = _wait(future, ctx)
        except agent_model.ModelCallError as exc:
            raise AgentFailed(str(exc)) from None
        try:
            message = answer["choices"][0]["message"]
            assert isinstance(message, dict)
        except (KeyError, IndexError, TypeError, AssertionError):
            raise AgentFailed(f"the model endpoint's answer has no choices[0].message: {json.dumps(answer)[:300]}") from None
        content = message.get("content")
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise AgentFailed("the model's tool_calls is not a list")
        if not calls:
            turns.append({"role": "assistant", "content": content})
            return content if isinstance(content, str) else ("" if content is None else json.dumps(content))
        parsed = [_parse_code(c) for c in calls]
        turns.append({"role": "assistant", "content": content, "code": "\n\n".join(code for _, code in parsed)})
        messages.append({"role": "assistant", "content": content,
                         "tool_calls": [c for c in calls if isinstance(c, dict)]})
        for call_id, code in parsed:
            result = session.run(code)
            turn, text = _tool_turn(code, result, turn_no, files, seen_files)
            turns.append(turn)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
    raise AgentFailed(f"the model did not answer within {max_turns} turns (it still asked to run code); "
                      "the turns so far are in the step's output")


def run(ctx, params) -> Outcome:
    from governance.masking import Masker

    turns: list = []
    files: list = []
    masker = Masker({})
    session = None
    status, error, answer = Status.SUCCEEDED, "", None
    started = time.monotonic()
    try:
        conn = _connection(params.get("connection"))
        try:
            api_key = conn.api_key()
        except Exception as exc:
            raise AgentFailed(f"the API key of model connection {conn.name!r} cannot be decrypted "
                              f"({exc.__class__.__name__})") from None
        masker = Masker({KEY_MARK: api_key} if api_key else {})
        session = Session(ctx, params)
        answer = _converse(ctx, params, conn, api_key, session, turns, files)
    except AgentFailed as exc:
        status, error = exc.status, str(exc)
    except Cancelled:
        status, error = Status.CANCELLED, "cancelled while the agent was working"
    finally:
        if session is not None:
            session.end()
    sandbox = {}
    if session is not None and session.executions:
        sandbox = {**session.last_meta, "session_s": round(session.session_s, 6),
                   "executions": session.executions, "timeout_s": session.timeout_s,
                   "memory_mib": session.memory_mib}
    sandbox["model_turns"] = sum(1 for t in turns if t.get("role") == "assistant")
    sandbox["duration_ms"] = round((time.monotonic() - started) * 1000, 3)
    output = {"answer": answer if status == Status.SUCCEEDED else None, "turns": turns}
    if status == Status.SUCCEEDED:
        outcome = Outcome(output=output, sandbox=sandbox, files=tuple(files))
    else:
        outcome = Outcome(status=status, ports=(), output=output, error=error, sandbox=sandbox, files=tuple(files))
    return masker.outcome(outcome)
