// Discovery documents (/api, /apis, /api/v1, /apis/{group}/{version}, /version) in the real server's shapes,
// listing what the fake actually serves.
import { type Registry } from "./resources.js";
import { type ResourceType } from "./types.js";

function resourceList(groupVersion: string, types: ResourceType[]) {
  const resources: Record<string, unknown>[] = [];
  for (const rt of types) {
    resources.push({
      name: rt.plural,
      singularName: rt.singular,
      namespaced: rt.namespaced,
      kind: rt.kind,
      verbs: rt.verbs,
      ...(rt.shortNames ? { shortNames: rt.shortNames } : {}),
    });
    if (rt.statusSubresource)
      resources.push({ name: `${rt.plural}/status`, singularName: "", namespaced: rt.namespaced, kind: rt.kind, verbs: ["get", "patch", "update"] });
    if (rt.kind === "Pod") resources.push({ name: "pods/binding", singularName: "", namespaced: true, kind: "Binding", verbs: ["create"] });
  }
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion, resources };
}

export function discovery(registry: Registry, path: string, serverAddress: string): unknown {
  if (path === "/api") {
    return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }] };
  }
  if (path === "/api/v1") return resourceList("v1", registry.typesIn("", "v1"));
  const groups = registry.groups();
  const group = (name: string) => {
    const versions = [...(groups.get(name) ?? [])].sort().map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    return { kind: "APIGroup", apiVersion: "v1", name, versions, preferredVersion: versions[0] };
  };
  if (path === "/apis") return { kind: "APIGroupList", apiVersion: "v1", groups: [...groups.keys()].sort().map(group) };
  const m = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(path);
  if (m && groups.has(m[1])) {
    if (!m[2]) return group(m[1]);
    if (groups.get(m[1])!.has(m[2])) return resourceList(`${m[1]}/${m[2]}`, registry.typesIn(m[1], m[2]));
  }
  if (path === "/version") {
    return {
      major: "1",
      minor: "36",
      gitVersion: "v1.36.0-banger-fake",
      platform: "linux/amd64",
      goVersion: "n/a",
      compiler: "n/a",
      buildDate: "",
      gitCommit: "",
      gitTreeState: "clean",
    };
  }
  return undefined;
}
