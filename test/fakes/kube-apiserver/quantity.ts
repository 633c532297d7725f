// Kubernetes resource quantities ("500m", "512Mi", "1Gi", "2", "1e3") in the units kube-scheduler compares:
// cpu in millicores, everything else in whole units, both rounded up as resource.Quantity's MilliValue/Value do.

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const FORM = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$/;

export class QuantityError extends Error {}

/** The quantity's value in base units (a float); throws QuantityError on text the real parser refuses. */
export function parseQuantity(q: string | number): number {
  if (typeof q === "number") return q;
  const m = FORM.exec(q.trim());
  if (!m || q.trim() === "") throw new QuantityError(`quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`);
  const n = Number(m[1]);
  if (m[3] !== undefined) return n * 10 ** Number(m[3]);
  const suffix = m[2] ?? "";
  return n * (BINARY[suffix] ?? DECIMAL[suffix]);
}

/** Value as the scheduler counts it: millicores for cpu, whole units (rounded up) for the rest. */
export function schedulerUnits(resource: string, q: string | number): number {
  const v = parseQuantity(q);
  // The 1e-9 slack absorbs float error from decimal suffixes so "0.1" cpu is 100m, not 101m.
  return resource === "cpu" ? Math.ceil(v * 1000 - 1e-9) : Math.ceil(v - 1e-9);
}
