import { PatchStrategy, type ConfigurationOptions, type ObservableMiddleware } from "@kubernetes/client-node";
import { of } from "@kubernetes/client-node/dist/gen/rxjsStub.js";

/** Every API call of the node agent ends within this, answered or not. */
export const CALL_TIMEOUT_MS = 15_000;

/** Request options: a deadline on the call, and a Content-Type for patches. */
export function callOptions(patch?: "merge"): ConfigurationOptions<ObservableMiddleware> {
  const mw: ObservableMiddleware = {
    pre: (req) => {
      req.setSignal(AbortSignal.timeout(CALL_TIMEOUT_MS));
      if (patch === "merge") req.setHeaderParam("Content-Type", PatchStrategy.MergePatch);
      return of(req);
    },
    post: (res) => of(res),
  };
  return { middleware: [mw], middlewareMergeStrategy: "append" };
}
