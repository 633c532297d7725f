// The fake's spec loader is plain JS shared with the fake process; tests use its router loosely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function loadSpec(file: string, opts?: { allowUnknownFields?: boolean }): any;
