/**
 * A VM's serial console log, which the VMM process appends to itself. Offsets are
 * virtual: positions in the whole stream since the VM was created, so a reader
 * keeps its place when the log is rotated underneath it.
 */
export interface ConsoleChunk {
  /** Virtual offset just past `data`: pass it to the next read. */
  offset: number;
  /** Virtual offset of the end of the stream (the newest byte + 1). */
  size: number;
  data: string;
  /** Oldest virtual offset still stored; an older offset is read from here. */
  start: number;
}

export interface ConsoleLogs {
  /** Up to maxBytes from offset, across the rotated and the current file. */
  read(dir: string, offset: number, maxBytes: number): Promise<ConsoleChunk>;
  /** Rotate when the current file is over maxBytes; true when it did. */
  rotate(dir: string, maxBytes: number): Promise<boolean>;
  /** The last `lines` lines of the stream; "" when there is none. */
  tail(dir: string, lines: number): Promise<string>;
}
