"""The real, unmodified agent clients of Azure Container Apps dynamic sessions against Stepwell's
session-pool API (/api/sessionpools/default/) served over HTTPS: LangChain's
SessionsPythonREPLTool and SessionsBashTool (langchain-azure-dynamic-sessions, which calls
`requests`: the test's self-signed certificate is trusted through REQUESTS_CA_BUNDLE) and
Semantic Kernel's SessionsPythonTool (which takes only https:// endpoints; it gets an httpx client
that trusts the certificate). One stack for the module (tls_stack.py): uvicorn with TLS, a
sandbox service on the libvirt driver, API keys of alice and bob.
Run under `flock /tmp/libvirt-tests.lock`."""
from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import pytest
import requests

from tests.agents.tls_stack import TlsStack

pytestmark = pytest.mark.libvirt

PAYLOAD = bytes(range(256)) * 4 + b"\nthe end\n"      # not UTF-8: bytes must come back as sent
BAD_KEY = "sw_000000000000_" + "A" * 43
FIGURE = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [1, 4, 9]); plt.title('squares')
plt.show()
"""


@pytest.fixture(scope="module")
def tls():
    s = TlsStack(pool_size=2)
    yield s
    s.close()


@pytest.fixture
def trusted(tls, monkeypatch):
    """`requests` (LangChain's transport) trusts the stack's certificate, as a user would set it."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_file))
    return tls


def _lc_tools(tls, key: str, session_id: str | None = None):
    """LangChain's Python tool and a Bash tool on the same identifier, both sending `key`."""
    from langchain_azure_dynamic_sessions import SessionsBashTool, SessionsPythonREPLTool

    kw = {"pool_management_endpoint": tls.endpoint, "access_token_provider": lambda: key}
    if session_id:
        kw["session_id"] = session_id
    python = SessionsPythonREPLTool(**kw)
    return python, SessionsBashTool(**{**kw, "session_id": python.session_id})


def _why(exc: requests.HTTPError) -> str:
    req, resp = exc.request, exc.response
    return f"{req.method} {req.url} -> {resp.status_code} {resp.text[:2000]}"


def test_https_is_served_and_required(tls):
    from semantic_kernel.core_plugins.sessions_python_tool import SessionsPythonTool
    from semantic_kernel.exceptions.function_exceptions import FunctionInitializationError

    r = httpx.get(tls.base + "/api/schema/workflow.json", verify=tls.ssl_context())
    assert r.status_code == 200 and r.url.scheme == "https"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls.base + "/api/schema/workflow.json")      # the system's CAs do not know it
    # why the stack serves TLS at all: Semantic Kernel refuses a plain-HTTP pool endpoint
    with pytest.raises(FunctionInitializationError, match="https"):
        SessionsPythonTool(auth_callback=lambda: tls.keys["alice"],
                           pool_management_endpoint=tls.endpoint.replace("https://", "http://"))


def test_langchain_python_and_bash_tools_keep_state_and_files(trusted):
    tls = trusted
    python, bash = _lc_tools(tls, tls.keys["alice"])
    try:
        # the documented invocation: a string in, the JSON string the model reads out
        assert json.loads(python.invoke("6 * 7")) == {"result": 42, "stdout": "", "stderr": ""}
        # state lives on across calls of one session
        first = python.execute("secret = 'alice-' + str(6 * 7)\nprint('set')")
        assert (first["status"], first["stdout"]) == ("Success", "set\n"), first
        assert python.execute("secret")["result"] == "alice-42"

        meta = python.upload_file(data=io.BytesIO(PAYLOAD), remote_file_path="notes.bin")
        assert (meta.filename, meta.size_in_bytes, meta.full_path) == ("notes.bin", len(PAYLOAD), "/mnt/data/notes.bin")
        assert {f.filename: f.size_in_bytes for f in python.list_files()} == {"notes.bin": len(PAYLOAD)}
        assert python.download_file(remote_file_path="notes.bin").read() == PAYLOAD
        assert python.execute("open('/mnt/data/notes.bin', 'rb').read() == bytes(range(256)) * 4 + b'\\nthe end\\n'"
                              )["result"] is True

        # a figure the code shows is the call's image result; the tool hides its data from the model
        msg = python.invoke({"args": {"python_code": FIGURE}, "id": "call-1", "name": python.name, "type": "tool_call"})
        shown = json.loads(msg.content)["result"]
        assert shown.get("type") == "image" and "base64_data" not in shown, msg.content
        png = base64.b64decode(msg.artifact["result"]["base64_data"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000

        # the Bash tool on the same identifier works in the same session's files
        out = json.loads(bash.invoke("wc -c < /mnt/data/notes.bin && echo from bash > /mnt/data/b.txt"))
        assert out == {"stdout": f"{len(PAYLOAD)}\n", "stderr": "", "exitCode": 0}, out
        failed = json.loads(bash.invoke("ls /mnt/data/missing"))
        assert failed["exitCode"] == 2 and "No such file" in failed["stderr"], failed
        assert python.execute("open('/mnt/data/b.txt').read()")["result"] == "from bash\n"
    except requests.HTTPError as exc:
        pytest.fail(_why(exc))

    # bob, with the very same identifier, gets a session of his own: no variable, no file
    bob, _ = _lc_tools(tls, tls.keys["bob"], python.session_id)
    try:
        seen = bob.execute("secret")
        assert seen["status"] == "Failure" and "NameError" in seen["stderr"], seen
        assert bob.list_files() == []
        with pytest.raises(requests.HTTPError) as missing:
            bob.download_file(remote_file_path="notes.bin")
        assert missing.value.response.status_code == 404, _why(missing.value)
        assert bob.execute("import os; sorted(os.listdir('/mnt/data'))")["result"] == []
        assert python.execute("secret")["result"] == "alice-42"      # and alice's state is untouched
    except requests.HTTPError as exc:
        pytest.fail(_why(exc))

    # a key Stepwell does not know: the client raises on the 401
    bad, _ = _lc_tools(tls, BAD_KEY, python.session_id)
    with pytest.raises(requests.HTTPError) as refused:
        bad.execute("secret")
    assert refused.value.response.status_code == 401, _why(refused.value)
    assert refused.value.response.headers["WWW-Authenticate"].startswith("Bearer")


def test_semantic_kernel_sessions_python_tool(tls, tmp_path):
    from semantic_kernel import Kernel
    from semantic_kernel.core_plugins.sessions_python_tool import SessionsPythonTool
    from semantic_kernel.exceptions.function_exceptions import FunctionExecutionException

    local = tmp_path / "upload" / "data.bin"
    local.parent.mkdir()
    local.write_bytes(PAYLOAD)

    def tool(http, key):
        return SessionsPythonTool(auth_callback=lambda: key, pool_management_endpoint=tls.endpoint,
                                  http_client=http, enable_dangerous_file_uploads=True,
                                  allowed_upload_directories=[str(local.parent)])

    async def flow():
        async with httpx.AsyncClient(verify=tls.ssl_context(), timeout=120) as http:
            with pytest.raises(FunctionExecutionException) as refused:
                await tool(http, BAD_KEY).execute_code("n")
            assert isinstance(refused.value.__cause__, httpx.HTTPStatusError), refused.value
            assert refused.value.__cause__.response.status_code == 401, refused.value

        async with httpx.AsyncClient(verify=tls.ssl_context(), timeout=120) as http:
            sk = tool(http, tls.keys["alice"])
            out = await sk.execute_code("n = 6 * 7\nprint('n set')")
            assert out.startswith("Status:\nSuccess\n") and "Stdout:\nn set\n" in out, out
            assert "Result:\n42\n" in await sk.execute_code("n")
            # through a kernel, as an agent calls it
            kernel = Kernel()
            kernel.add_plugin(sk, plugin_name="python")
            answer = await kernel.invoke(plugin_name="python", function_name="execute_code", code="n * 2")
            assert "Result:\n84\n" in str(answer), str(answer)

            # after execute_code the client keeps `Content-Type: application/json` among its
            # headers, so the multipart upload goes out under that type (httpx keeps a set one)
            meta = await sk.upload_file(local_file_path=str(local), remote_file_path="sk.bin")
            assert (meta.full_path, meta.size_in_bytes) == ("/mnt/data/sk.bin", len(PAYLOAD))
            assert {f.filename: f.size_in_bytes for f in await sk.list_files()} == {"sk.bin": len(PAYLOAD)}
            assert (await sk.download_file(remote_file_name="sk.bin")).read() == PAYLOAD

    asyncio.run(flow())
