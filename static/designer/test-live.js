// The Test step panel's live output and produced files (issue 13), used by step-tools.js.
//
// followTestOutput(workflowId, nodeId, box) follows ws/workflows/<id>/ while a step test runs and
// shows the step.output events of that node in step tests (runs whose queued event says
// kind "test") in a live log inside `box`. `await live.ready` before starting the test (the socket
// is open, or 2 s passed); `live.stop()` once the answer is in.
//
// testFiles(res, nodeId) is a block listing the files the tested step produced, with a preview of
// images (matplotlib figures come back as figure_N.png files), or null when there are none.

import { h } from "./ui.js";
import { Follower } from "./follow.js";

const IMAGE = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp" };

export function followTestOutput(workflowId, nodeId, box) {
  const tests = new Set();
  let out = null, err = null, opened;
  const ready = new Promise((resolve) => { opened = resolve; setTimeout(resolve, 2000); });
  const ensure = () => {
    if (out) return;
    out = h("pre", { class: "test-log test-stdout test-live-stdout" });
    err = h("pre", { class: "test-log test-stderr test-live-stderr", hidden: true });
    box.replaceChildren(h("div", { class: "test-live", id: "test-live" },
      h("div", { class: "muted small test-running" }, h("span", { class: "live-dot on" }), " Running the step… live output:"), out, err));
  };
  const follower = new Follower(`/ws/workflows/${workflowId}/`, {
    onOpen: () => opened(),
    poll: () => {},
    pollMs: 60000,
    onMessage: (msg) => {
      if (msg.type === "run.status" && msg.status === "queued" && msg.data?.kind === "test") tests.add(msg.run_id);
      if (msg.type !== "step.output" || msg.node_id !== nodeId || !tests.has(msg.run_id)) return;
      ensure();
      if (msg.data.stdout) { out.append(msg.data.stdout); out.scrollTop = out.scrollHeight; }
      if (msg.data.stderr) { err.hidden = false; err.append(msg.data.stderr); err.scrollTop = err.scrollHeight; }
    },
  });
  follower.start();
  return { ready, stop: () => follower.close() };
}

export function testFiles(res, nodeId) {
  const steps = (res?.run?.steps || []).filter((s) => s.node_id === nodeId);
  const step = steps.length ? steps.reduce((a, b) => (b.id > a.id ? b : a)) : null;
  const files = step?.files || [];
  if (!files.length) return null;
  const items = files.map((f) => {
    const ext = f.name.includes(".") ? f.name.split(".").pop().toLowerCase() : "";
    const li = h("li", { class: "file" }, f.truncated ? h("span", { class: "muted" }, f.name)
      : h("a", { href: f.url, download: f.name, class: "file-link" }, f.name),
    h("span", { class: "muted small" }, ` ${f.size} B`));
    if (IMAGE[ext] && !f.truncated) {
      const img = h("img", { class: "file-image test-image", alt: f.name, "data-file": f.name });
      li.append(img);
      fetch(f.url, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
        .then((b) => { img.src = URL.createObjectURL(new Blob([b], { type: IMAGE[ext] })); })
        .catch(() => img.replaceWith(h("span", { class: "muted small" }, "preview unavailable")));
    }
    return li;
  });
  return h("details", { class: "test-block test-files-block", open: true },
    h("summary", {}, `Files (${files.length})`), h("ul", { class: "files test-files" }, items));
}
