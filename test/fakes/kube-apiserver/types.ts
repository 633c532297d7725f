// Shapes the fake passes around. Objects stay plain JSON, as on the wire.

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  [k: string]: unknown;
}

export interface KObj {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: Record<string, any>;
  status?: Record<string, any>;
  [k: string]: any;
}

/** A resource the fake serves: a built-in kind or one a CRD declared. */
export interface ResourceType {
  group: string; // "" for the core group
  version: string;
  kind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  /** Whether /status exists; normal writes then keep the stored status. */
  statusSubresource: boolean;
  /** Swagger definition of the kind, for built-ins. */
  definition?: string;
  verbs: string[];
  shortNames?: string[];
}

export const apiVersionOf = (rt: ResourceType) => (rt.group ? `${rt.group}/${rt.version}` : rt.version);
export const keyOf = (rt: ResourceType, ns: string | undefined, name: string) => `${rt.group}/${rt.plural}/${ns ?? ""}/${name}`;

export type WatchType = "ADDED" | "MODIFIED" | "DELETED";

/** One change in the store's history; prev is the object before the change (for selector transitions). */
export interface Change {
  rv: number;
  type: WatchType;
  rt: ResourceType;
  obj: KObj;
  prev?: KObj;
}

/** JSON with sorted keys, so two objects compare equal whatever order a client sent their fields in. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );
}
