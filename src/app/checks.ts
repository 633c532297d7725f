export type CheckStatus = "PASS" | "WARN" | "FAIL";

/** One line of `banger doctor`. */
export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}
