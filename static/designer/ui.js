// Small UI helpers shared by the pages: element builder, toasts, modal dialogs, time formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toastHost() {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(host);
  }
  return host;
}

// kind: "success" | "error" | "info"
export function toast(message, kind = "info", { timeout = 3500, details = [] } = {}) {
  const icon = { success: "✓", error: "!", info: "i" }[kind] || "i";
  const el = h("div", { class: `toast toast-${kind}` },
    h("span", { class: "toast-icon" }, icon),
    h("div", { class: "toast-body" },
      h("div", { class: "toast-msg" }, message),
      details.length ? h("ul", { class: "toast-details" }, details.slice(0, 6).map((d) => h("li", {}, d))) : null),
    h("button", { class: "toast-close", "aria-label": "Dismiss", onclick: () => el.remove() }, "×"));
  toastHost().append(el);
  if (timeout) setTimeout(() => { el.classList.add("toast-out"); setTimeout(() => el.remove(), 250); }, kind === "error" ? timeout * 2 : timeout);
  return el;
}

// A modal built on <dialog>. `body` is a node; buttons: [{label, value, kind}]. Resolves with the
// clicked button's value (or null on Escape/cancel). `onSubmit(value)` may return false to keep it open.
export function modal({ title, body, buttons, onSubmit, className = "" }) {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog", class: "modal-form" });
    const footer = h("div", { class: "modal-actions" });
    for (const b of buttons) {
      footer.append(h("button", {
        class: `btn ${b.kind ? "btn-" + b.kind : ""}`, value: b.value, type: b.value === "cancel" ? "button" : "submit",
        "data-value": b.value,
        onclick: b.value === "cancel" ? () => close(null) : undefined,
      }, b.label));
    }
    form.append(h("h2", { class: "modal-title" }, title), h("div", { class: "modal-body" }, body), footer);
    const dlg = h("dialog", { class: `modal ${className}` }, form);
    let done = false;
    function close(value) {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(value);
    }
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const value = (e.submitter && e.submitter.value) || "ok";
      if (onSubmit) {
        const ok = await onSubmit(value);
        if (ok === false) return;
      }
      close(value);
    });
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); close(null); });
    document.body.append(dlg);
    dlg.showModal();
    const first = dlg.querySelector("input, textarea, select");
    if (first) { first.focus(); if (first.select) first.select(); }
  });
}

export async function confirmDialog(title, message, { confirmLabel = "OK", danger = false } = {}) {
  const value = await modal({
    title, body: h("p", {}, message),
    buttons: [{ label: "Cancel", value: "cancel" }, { label: confirmLabel, value: "ok", kind: danger ? "danger" : "primary" }],
  });
  return value === "ok";
}

export function relativeTime(iso) {
  const t = new Date(iso);
  const s = Math.round((Date.now() - t.getTime()) / 1000);
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const hr = Math.round(m / 60);
  if (hr < 24) return `${hr} h ago`;
  const d = Math.round(hr / 24);
  if (d < 7) return `${d} d ago`;
  return t.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export function downloadJson(filename, data) {
  const blob = new Blob([JSON.stringify(data, null, 2) + "\n"], { type: "application/json" });
  const a = h("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

export function errorList(errors) {
  return h("ul", { class: "error-list" }, errors.map((e) =>
    h("li", {}, h("code", {}, e.path || "$"), " ", e.message)));
}
