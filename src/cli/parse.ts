import { InvalidArgumentError } from "commander";

/** commander parser for positive integer flags; a bad value is a usage error (exit 2) naming the flag. */
export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive integer");
  return n;
}
