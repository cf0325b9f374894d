// REST client for /api/: JSON in and out, session auth with the CSRF header, one error type.

export class ApiError extends Error {
  // status: HTTP status (0 for network failures); errors: [{path, message, node_id?}]
  constructor(status, detail, errors = []) {
    super(detail || `Request failed (${status})`);
    this.status = status;
    this.detail = detail;
    this.errors = errors;
  }
}

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (m) return decodeURIComponent(m[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

export async function request(method, url, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "Network error: the server could not be reached.");
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const detail = (data && data.detail) || `${res.status} ${res.statusText}`;
    const errors = (data && Array.isArray(data.errors)) ? data.errors : [];
    throw new ApiError(res.status, detail, errors);
  }
  return data;
}

const wf = (id) => `/api/workflows/${encodeURIComponent(id)}/`;

export const api = {
  listWorkflows: () => request("GET", "/api/workflows/?limit=500"),
  createWorkflow: (data) => request("POST", "/api/workflows/", data),
  getWorkflow: (id) => request("GET", wf(id)),
  updateWorkflow: (id, data) => request("PATCH", wf(id), data),
  deleteWorkflow: (id) => request("DELETE", wf(id)),
  exportUrl: (id) => `${wf(id)}export/`,
  importWorkflow: (doc) => request("POST", "/api/workflows/import/", doc),
  validate: (definition) => request("POST", "/api/workflows/validate/", definition),
  versions: (id) => request("GET", `${wf(id)}versions/?limit=200`),
  version: (id, n) => request("GET", `${wf(id)}versions/${n}/`),
  restoreVersion: (id, n) => request("POST", `${wf(id)}versions/${n}/restore/`),
  startRun: (id, payload) => request("POST", `${wf(id)}runs/`, { payload }),
  run: (runId) => request("GET", `/api/runs/${encodeURIComponent(runId)}/`),
  latestRuns: (id) => request("GET", `${wf(id)}runs/?limit=1`),
  schemas: (id) => request("GET", `${wf(id)}schemas/`),
  pins: (id) => request("GET", `${wf(id)}pins/`),
  testNode: (id, nodeId, body) => request("POST", `${wf(id)}nodes/${encodeURIComponent(nodeId)}/test/`, body),
  pin: (id, nodeId, body) => request("POST", `${wf(id)}nodes/${encodeURIComponent(nodeId)}/pin/`, body),
  unpin: (id, nodeId) => request("DELETE", `${wf(id)}nodes/${encodeURIComponent(nodeId)}/pin/`),
};
