// Which resources the fake serves: a fixed set of built-ins and whatever CustomResourceDefinitions declare.
import { type KObj, type ResourceType } from "./types.js";

const RW = ["create", "delete", "get", "list", "patch", "update", "watch"];

export const BUILTINS: ResourceType[] = [
  {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    namespaced: true,
    statusSubresource: true,
    definition: "io.k8s.api.core.v1.Pod",
    verbs: RW,
    shortNames: ["po"],
  },
  {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    namespaced: false,
    statusSubresource: true,
    definition: "io.k8s.api.core.v1.Node",
    verbs: RW,
    shortNames: ["no"],
  },
  {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    namespaced: false,
    statusSubresource: true,
    definition: "io.k8s.api.core.v1.Namespace",
    verbs: ["create", "get", "list", "watch", "patch", "update"],
    shortNames: ["ns"],
  },
  {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    namespaced: true,
    statusSubresource: false,
    definition: "io.k8s.api.core.v1.Event",
    verbs: RW,
    shortNames: ["ev"],
  },
  {
    group: "apiextensions.k8s.io",
    version: "v1",
    kind: "CustomResourceDefinition",
    plural: "customresourcedefinitions",
    singular: "customresourcedefinition",
    namespaced: false,
    statusSubresource: true,
    definition: "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    verbs: RW,
    shortNames: ["crd", "crds"],
  },
];

export const BINDING_DEFINITION = "io.k8s.api.core.v1.Binding";
export const DELETE_OPTIONS_DEFINITION = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";

export const builtin = (plural: string): ResourceType => BUILTINS.find((r) => r.plural === plural)!;

/** A served version of a CRD: its type plus the version's openAPIV3Schema. */
export interface CustomType {
  rt: ResourceType;
  schema: Record<string, unknown> | undefined;
  crdName: string;
}

export class Registry {
  private readonly custom = new Map<string, CustomType>();

  find(group: string, version: string, plural: string): ResourceType | undefined {
    if (group === "" || group === "apiextensions.k8s.io") {
      return BUILTINS.find((r) => r.group === group && r.version === version && r.plural === plural);
    }
    return this.custom.get(`${group}/${version}/${plural}`)?.rt;
  }

  customType(rt: ResourceType): CustomType | undefined {
    return this.custom.get(`${rt.group}/${rt.version}/${rt.plural}`);
  }

  customTypes(): CustomType[] {
    return [...this.custom.values()];
  }

  /** Registers (or re-registers) every served version of a CRD. */
  addCrd(crd: KObj): void {
    this.removeCrd(crd.metadata.name!);
    const spec = crd.spec as {
      group: string;
      scope: string;
      names: { plural: string; singular?: string; kind: string; shortNames?: string[] };
      versions: { name: string; served: boolean; subresources?: { status?: object }; schema?: { openAPIV3Schema?: Record<string, unknown> } }[];
    };
    for (const v of spec.versions.filter((x) => x.served)) {
      const rt: ResourceType = {
        group: spec.group,
        version: v.name,
        kind: spec.names.kind,
        plural: spec.names.plural,
        singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
        namespaced: spec.scope === "Namespaced",
        statusSubresource: Boolean(v.subresources?.status),
        verbs: RW,
        shortNames: spec.names.shortNames,
      };
      this.custom.set(`${spec.group}/${v.name}/${spec.names.plural}`, { rt, schema: v.schema?.openAPIV3Schema, crdName: crd.metadata.name! });
    }
  }

  removeCrd(name: string): void {
    for (const [k, v] of this.custom) if (v.crdName === name) this.custom.delete(k);
  }

  groups(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>([["apiextensions.k8s.io", new Set(["v1"])]]);
    for (const c of this.custom.values()) {
      if (!out.has(c.rt.group)) out.set(c.rt.group, new Set());
      out.get(c.rt.group)!.add(c.rt.version);
    }
    return out;
  }

  typesIn(group: string, version: string): ResourceType[] {
    if (group === "" || group === "apiextensions.k8s.io") return BUILTINS.filter((r) => r.group === group && r.version === version);
    return this.customTypes()
      .filter((c) => c.rt.group === group && c.rt.version === version)
      .map((c) => c.rt);
  }
}
