// The HTTP trigger's section of the properties panel: the workflow's secret hook URL with a copy
// button, a ready `curl` line (with the trigger's sample payload, if it has one) and "Rotate",
// which replaces the URL after a confirm (GET/POST /api/workflows/<id>/hook[/rotate]/).
//
//   const sec = hookSection(node, workflowId);  // {el, sync(node)}; panel.js appends sec.el
import { request } from "./api.js";
import { confirmDialog, h, toast } from "./ui.js";

// A POSIX shell word: single quotes, with each ' written as '\''
export const shellQuote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

// The curl command that calls `url` as the trigger expects (method, JSON body).
export function curlLine(url, method = "POST", payload = undefined) {
  const parts = ["curl", "-X", method, shellQuote(url)];
  if (method !== "GET") {
    parts.push("-H", shellQuote("Content-Type: application/json"),
      "-d", shellQuote(JSON.stringify(payload === undefined ? {} : payload)));
  }
  return parts.join(" ");
}

async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // no clipboard permission (e.g. plain http): fall back to selecting the text and execCommand
    input.focus();
    input.select();
    if (!document.execCommand("copy")) throw new Error("the browser refused to copy");
  }
}

export function hookSection(node, workflowId) {
  let current = node;
  let hook = null;  // {token, url}
  const urlInput = h("input", { type: "text", id: "hook-url", class: "mono", readonly: true, "aria-label": "Hook URL",
    value: "Loading…" });
  const curlInput = h("textarea", { id: "hook-curl", class: "mono hook-curl", rows: 5, readonly: true,
    "aria-label": "curl command", spellcheck: "false" });
  const copy = (input, what) => async () => {
    if (!hook) return;
    try {
      await copyText(input.value, input);
      toast(`${what} copied`, "success");
    } catch (err) {
      toast(`Could not copy: ${err.message}`, "error");
    }
  };
  const copyUrl = h("button", { type: "button", class: "btn btn-sm", id: "hook-copy", onclick: copy(urlInput, "URL") }, "Copy");
  const copyCurl = h("button", { type: "button", class: "btn btn-sm", id: "hook-copy-curl", onclick: copy(curlInput, "curl command") }, "Copy");
  const rotate = h("button", { type: "button", class: "btn btn-sm btn-danger-ghost", id: "hook-rotate", onclick: async () => {
    const ok = await confirmDialog("Rotate the hook URL?",
      "A new secret URL replaces this one. Callers of the old URL get 404 from now on.",
      { confirmLabel: "Rotate", danger: true });
    if (!ok) return;
    try {
      hook = await request("POST", `/api/workflows/${workflowId}/hook/rotate/`);
      render();
      toast("The hook URL was rotated", "success");
    } catch (err) {
      toast(`Rotate failed: ${err.message}`, "error");
    }
  } }, "Rotate");

  function render() {
    if (!hook) return;
    const p = current.parameters || {};
    urlInput.value = hook.url;
    curlInput.value = curlLine(hook.url, p.method || "POST", p.sample_payload);
  }

  request("GET", `/api/workflows/${workflowId}/hook/`).then((data) => { hook = data; render(); })
    .catch((err) => { urlInput.value = `Unavailable: ${err.message}`; });

  const el = h("section", { class: "props-section hook-section" }, h("h4", {}, "Trigger URL"),
    h("p", { class: "muted small" }, "Requests to this secret URL start a run of the saved version. Anyone with the URL can call it."),
    h("div", { class: "hook-row" }, urlInput, copyUrl),
    h("span", { class: "field-label" }, "Call it with curl"),
    h("div", { class: "hook-row" }, curlInput, copyCurl),
    h("div", { class: "hook-actions" }, rotate));
  return { el, sync(n) { current = n; render(); } };
}
