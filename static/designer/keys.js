// API keys page: list the signed-in user's keys, create one (shown once, with a copy button),
// rename and revoke (after a confirmation), all through /api/keys/.

import { request } from "./api.js";
import { confirmDialog, h, modal, relativeTime, toast } from "./ui.js";

const root = document.getElementById("key-list");
const form = document.getElementById("key-create");
const formError = document.getElementById("key-create-error");
const created = document.getElementById("key-created");
const createdValue = document.getElementById("key-created-value");

const keysApi = {
  list: () => request("GET", "/api/keys/"),
  create: (body) => request("POST", "/api/keys/", body),
  rename: (id, name) => request("PATCH", `/api/keys/${encodeURIComponent(id)}/`, { name }),
  revoke: (id) => request("POST", `/api/keys/${encodeURIComponent(id)}/revoke/`),
};

const when = (iso) => (iso ? h("span", { title: new Date(iso).toLocaleString() }, relativeTime(iso)) : "—");
const expiry = (iso) => (iso ? h("span", { title: new Date(iso).toLocaleString() }, new Date(iso).toLocaleDateString()) : "never");

async function load() {
  try {
    render(await keysApi.list());
  } catch (err) {
    root.replaceChildren(h("div", { class: "empty-state" }, h("h2", {}, "Could not load keys"),
      h("p", { class: "muted" }, err.message),
      h("button", { class: "btn", type: "button", onclick: () => load() }, "Try again")));
  }
}

function render(keys) {
  if (!keys.length) {
    root.replaceChildren(h("p", { class: "muted", id: "keys-empty", style: "padding:16px" }, "No API keys yet."));
    return;
  }
  const rows = keys.map((k) => h("tr", { "data-key": k.name, "data-id": k.id, "data-status": k.status },
    h("td", {}, k.name),
    h("td", {}, h("code", {}, `sw_${k.prefix}_…`)),
    h("td", {}, h("span", { class: "badge", "data-role": "status" }, k.status)),
    h("td", {}, when(k.created)),
    h("td", {}, expiry(k.expires_at)),
    h("td", {}, when(k.last_used_at)),
    h("td", { class: "row-actions" }, k.status === "revoked" ? null : [
      h("button", { class: "icon-btn", type: "button", "data-action": "rename", onclick: () => rename(k) }, "Rename"),
      h("button", { class: "icon-btn danger", type: "button", "data-action": "revoke", onclick: () => revoke(k) }, "Revoke"),
    ])));
  root.replaceChildren(h("table", { class: "wf-table", id: "keys-table" },
    h("thead", {}, h("tr", {}, ["Name", "Key", "Status", "Created", "Expires", "Last used", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows)));
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  formError.textContent = "";
  const name = document.getElementById("key-name").value.trim();
  const days = document.getElementById("key-expires").value;
  try {
    const key = await keysApi.create({ name, expires_days: days ? Number(days) : null });
    document.getElementById("key-created-name").textContent = `“${key.name}”`;
    createdValue.value = key.key;
    created.hidden = false;
    createdValue.select();
    form.reset();
    load();
  } catch (err) {
    formError.textContent = err.message;
  }
});

document.getElementById("key-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(createdValue.value);
  } catch {
    createdValue.select();
    document.execCommand("copy");   // pages served over plain http (not localhost) have no clipboard API
  }
  toast("Key copied", "success");
});

document.getElementById("key-created-done").addEventListener("click", () => {
  createdValue.value = "";
  created.hidden = true;
});

async function rename(k) {
  const input = h("input", { type: "text", id: "key-rename-input", required: true, maxlength: 64, value: k.name });
  const err = h("div", { class: "field-error" });
  await modal({
    title: "Rename key",
    body: h("div", {}, h("label", { class: "field" }, h("span", { class: "field-label" }, "Name"), input), err),
    buttons: [{ label: "Cancel", value: "cancel" }, { label: "Save", value: "ok", kind: "primary" }],
    onSubmit: async () => {
      try {
        await keysApi.rename(k.id, input.value.trim());
      } catch (e) {
        err.textContent = e.message;
        return false;
      }
      toast("Key renamed", "success");
      load();
    },
  });
}

async function revoke(k) {
  const ok = await confirmDialog(`Revoke “${k.name}”?`,
    "Anything using this key stops working at once. This cannot be undone.", { confirmLabel: "Revoke", danger: true });
  if (!ok) return;
  try {
    await keysApi.revoke(k.id);
    toast(`Revoked “${k.name}”`, "success");
    load();
  } catch (err) {
    toast(`Revoke failed: ${err.message}`, "error");
  }
}

load();
