type LogFn = (obj: object, msg?: string) => void;

/** The part of a pino logger the VMM drivers use; a no-op object works where nobody listens. */
export interface DriverLog {
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  debug: LogFn;
}
