import type { Caller } from "../domain/caller.js";

/** What every route can read from its context: the caller, set once per request. */
export type ApiEnv = { Variables: { caller: Caller } };
