/**
 * An ssh `ProxyCommand` line from an argv: ssh runs it with the user's shell, and expands `%`
 * tokens in it first, so each word is single-quoted and each `%` doubled.
 */
export function proxyCommandLine(argv: string[]): string {
  return argv.map((s) => `'${s.replace(/'/g, `'\\''`).replace(/%/g, "%%")}'`).join(" ");
}
