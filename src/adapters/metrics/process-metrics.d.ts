// prom-client's default process metrics, one module each, so bangerd registers only those it keeps
// (lib/metrics/*.js of the pinned prom-client; the package declares no types for them).
declare module "prom-client/lib/metrics/*.js" {
  import type { Registry } from "prom-client";
  const register: (registry: Registry, config?: { eventLoopMonitoringPrecision?: number }) => void;
  export default register;
}
