// The conversation of an AI agent step (action.agent) on the run page: its output's `turns`
// (system and user prompts, the model's messages and code, each execution's output and figures),
// one bubble per turn. Figures are the step's produced files, named in the tool turns.
import { h } from "./ui.js";

const ROLE = { system: "System prompt", user: "Prompt", assistant: "Model", tool: "Code output" };

function block(label, text, cls = "") {
  return h("div", { class: "agent-block" }, h("div", { class: "agent-block-label muted small" }, label),
    h("pre", { class: `log ${cls}` }, text));
}

function figure(name, files, imageUrl) {
  const f = (files || []).find((x) => x.name === name);
  if (!f || f.truncated || !f.url) return h("div", { class: "muted small agent-figure-missing" }, `${name} (not kept)`);
  const img = h("img", { class: "agent-figure", alt: name, "data-file": name });
  imageUrl(f).then((u) => { img.src = u; }).catch(() => img.replaceWith(h("span", { class: "muted small" }, `${name}: preview unavailable`)));
  return h("a", { href: f.url, download: name, class: "agent-figure-link" }, img);
}

function turnView(turn, index, files, imageUrl) {
  const role = turn.role || "assistant";
  const body = [];
  if (role === "tool") {
    if (turn.status && turn.status !== "succeeded") {
      body.push(h("div", { class: "agent-status" }, h("span", { class: `badge ${turn.status === "timeout" ? "timed_out" : "failed"}` }, turn.status),
        turn.error ? h("span", { class: "small" }, ` ${turn.error}`) : null));
    }
    if (turn.stdout) body.push(block("stdout", turn.stdout));
    if (turn.stderr) body.push(block("stderr", turn.stderr, "log-err"));
    if (turn.result !== undefined && turn.result !== null) {
      body.push(block("result", typeof turn.result === "string" ? turn.result : JSON.stringify(turn.result, null, 2)));
    }
    if (turn.figures?.length) body.push(h("div", { class: "agent-figures" }, turn.figures.map((n) => figure(n, files, imageUrl))));
    if (!body.length) body.push(h("p", { class: "muted small" }, "No output."));
  } else {
    if (turn.content !== undefined && turn.content !== null && turn.content !== "") {
      body.push(h("div", { class: "agent-text" }, typeof turn.content === "string" ? turn.content : JSON.stringify(turn.content)));
    }
    if (turn.code) body.push(block("Code", turn.code, "agent-code"));
    if (!body.length) body.push(h("p", { class: "muted small" }, "(no text)"));
  }
  return h("li", { class: `agent-turn agent-${role}`, "data-role": role, "data-turn": index },
    h("div", { class: "agent-role small" }, ROLE[role] || role), ...body);
}

// `output`: the step's output ({answer, turns}); `files`: the step's files (with url);
// `imageUrl(file)`: a promise of an object URL for an image file (the run page's loader).
export function conversation(output, files, imageUrl) {
  const turns = Array.isArray(output?.turns) ? output.turns : [];
  if (!turns.length) return h("p", { class: "muted small" }, "No conversation recorded.");
  return h("ol", { class: "agent-conversation" }, turns.map((t, i) => turnView(t || {}, i, files, imageUrl)));
}
