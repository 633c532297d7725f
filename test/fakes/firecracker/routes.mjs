// Request routing shared by both modes of the fake: routes from the Swagger
// spec (spec.mjs), or, with FAKE_FC_SPEC=none, the built-in table of exactly
// the operations vmm-state.mjs implements.

function splitPath(p) {
  return p.split("/").filter(Boolean);
}

/** Routes the fake implements. Without the spec nothing checks bodies beyond these few rules. */
const IMPLEMENTED = [
  ["GET", "/"],
  ["GET", "/version"],
  ["GET", "/machine-config"],
  ["GET", "/vm/config"],
  ["PUT", "/machine-config"],
  ["PATCH", "/machine-config"],
  ["PUT", "/boot-source"],
  ["PUT", "/drives/{drive_id}"],
  ["PUT", "/network-interfaces/{iface_id}"],
  ["PUT", "/vsock"],
  ["PUT", "/logger"],
  ["PUT", "/metrics"],
  ["PUT", "/actions"],
  ["PATCH", "/vm"],
  ["PUT", "/snapshot/create"],
  ["PUT", "/snapshot/load"],
  ["PATCH", "/drives/{drive_id}"],
];

// The spec's enum for /actions: a body check vmm-state.mjs cannot do without.
const ACTIONS = ["FlushMetrics", "InstanceStart", "SendCtrlAltDel"];
// Likewise the enums the snapshot routes branch on.
const VM_STATES = ["Paused", "Resumed"];
const MEM_BACKENDS = ["File", "Uffd"];

function isObject(body) {
  return body !== null && typeof body === "object" && !Array.isArray(body);
}

function minimalValidator(method, template) {
  if (method === "GET") return null;
  const validate = (body) => {
    const problems = [];
    if (!isObject(body)) problems.push("body must be an object");
    else if (template === "/actions" && !ACTIONS.includes(body.action_type)) problems.push(`body.action_type must be one of ${ACTIONS.join(", ")}`);
    else if (template === "/vm" && !VM_STATES.includes(body.state)) problems.push(`body.state must be one of ${VM_STATES.join(", ")}`);
    else if (template === "/snapshot/load" && body.mem_backend !== undefined && !MEM_BACKENDS.includes(body.mem_backend?.backend_type)) {
      problems.push(`body.mem_backend.backend_type must be one of ${MEM_BACKENDS.join(", ")}`);
    }
    validate.errors = problems;
    return problems.length === 0;
  };
  validate.errors = [];
  return validate;
}

/** A router over {method, template, validate}; literal segments beat {templates}. */
export function makeRouter(routes) {
  const table = routes.map((r) => ({ ...r, segments: splitPath(r.template) }));
  return function route(method, urlPath) {
    const parts = splitPath(urlPath);
    let best = null;
    let bestScore = -1;
    for (const r of table) {
      if (r.method !== method || r.segments.length !== parts.length) continue;
      const params = {};
      let score = 0;
      let ok = true;
      for (let i = 0; i < parts.length; i++) {
        const seg = r.segments[i];
        if (seg.startsWith("{") && seg.endsWith("}")) params[seg.slice(1, -1)] = decodeURIComponent(parts[i]);
        else if (seg === parts[i]) score++;
        else {
          ok = false;
          break;
        }
      }
      if (ok && score > bestScore) {
        best = { ...r, params };
        bestScore = score;
      }
    }
    return best ? { route: best } : {};
  };
}

/** FAKE_FC_SPEC=none: the same router interface as loadSpec(), without schema validation. */
export function builtinSpec() {
  const route = makeRouter(IMPLEMENTED.map(([method, template]) => ({ method, template, validate: minimalValidator(method, template) })));
  return { version: "builtin", route, errorsText: (errors) => (errors ?? []).join("; ") };
}
