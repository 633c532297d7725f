// Label and field selectors as the list/watch endpoints take them (labelSelector=, fieldSelector=).
import { type KObj } from "./types.js";

type Req = { key: string; op: "=" | "!=" | "in" | "notin" | "exists" | "!exists"; values: string[] };

export class SelectorError extends Error {}

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (cur.trim() !== "") parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

function parseLabelReq(part: string): Req {
  let m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
  if (m) return { key: m[1], op: m[2] as "in" | "notin", values: m[3].split(",").map((v) => v.trim()) };
  m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(part);
  if (m) return { key: m[1], op: m[2] === "!=" ? "!=" : "=", values: [m[3]] };
  m = /^(!?)([\w./-]+)$/.exec(part);
  if (m) return { key: m[2], op: m[1] ? "!exists" : "exists", values: [] };
  throw new SelectorError(`unable to parse requirement: "${part}"`);
}

export type Matcher = (obj: KObj) => boolean;

export function labelSelector(text: string | null): Matcher {
  if (!text) return () => true;
  const reqs = splitTopLevel(text).map(parseLabelReq);
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    return reqs.every((r) => {
      const has = Object.hasOwn(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case "=":
          return has && v === r.values[0];
        case "!=":
          return !has || v !== r.values[0];
        case "in":
          return has && r.values.includes(v);
        case "notin":
          return !has || !r.values.includes(v);
        case "exists":
          return has;
        case "!exists":
          return !has;
      }
    });
  };
}

/** The field paths the real server supports per resource; anything else is a 400 like the real one. */
const FIELD_PATHS: Record<string, (o: KObj) => string | undefined> = {
  "metadata.name": (o) => o.metadata.name,
  "metadata.namespace": (o) => o.metadata.namespace ?? "",
  "spec.nodeName": (o) => (o.spec?.nodeName as string | undefined) ?? "",
  "spec.schedulerName": (o) => (o.spec?.schedulerName as string | undefined) ?? "",
  "status.phase": (o) => (o.status?.phase as string | undefined) ?? "",
  "spec.unschedulable": (o) => String(Boolean(o.spec?.unschedulable)),
  "involvedObject.name": (o) => ((o as { involvedObject?: { name?: string } }).involvedObject?.name as string | undefined) ?? "",
  "involvedObject.uid": (o) => ((o as { involvedObject?: { uid?: string } }).involvedObject?.uid as string | undefined) ?? "",
};
const FIELDS_BY_KIND: Record<string, string[]> = {
  Pod: ["metadata.name", "metadata.namespace", "spec.nodeName", "spec.schedulerName", "status.phase"],
  Node: ["metadata.name", "spec.unschedulable"],
  Event: ["metadata.name", "metadata.namespace", "involvedObject.name", "involvedObject.uid"],
};

export function fieldSelector(text: string | null, kind: string): Matcher {
  if (!text) return () => true;
  const allowed = FIELDS_BY_KIND[kind] ?? ["metadata.name", "metadata.namespace"];
  const reqs = splitTopLevel(text).map((part) => {
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw new SelectorError(`invalid selector: '${text}'; can't understand '${part}'`);
    if (!allowed.includes(m[1])) throw new SelectorError(`field label not supported: ${m[1]}`);
    return { get: FIELD_PATHS[m[1]], neg: m[2] === "!=", value: m[3] };
  });
  return (obj) => reqs.every((r) => (r.get(obj) === r.value) !== r.neg);
}

export type Requirement = { key: string; operator: string; values?: string[] };

/**
 * One requirement of a metav1.LabelSelector (In, NotIn, Exists, DoesNotExist) or, with `nodeSelector`,
 * of a NodeSelectorRequirement, which adds Gt and Lt. An unknown operator in a label selector throws (a
 * bad object, not a miss); in a node selector it matches nothing, so the scheduler's pass goes on.
 */
export function requirementMatches(labels: Record<string, string>, e: Requirement, nodeSelector = false): boolean {
  const has = Object.hasOwn(labels, e.key);
  switch (e.operator) {
    case "In":
      return has && (e.values ?? []).includes(labels[e.key]);
    case "NotIn":
      return !has || !(e.values ?? []).includes(labels[e.key]);
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
    case "Gt":
    case "Lt":
      if (nodeSelector) return has && (e.operator === "Gt" ? Number(labels[e.key]) > Number(e.values?.[0]) : Number(labels[e.key]) < Number(e.values?.[0]));
  }
  if (nodeSelector) return false;
  throw new Error(`label selector operator ${JSON.stringify(e.operator)} is not valid`);
}
