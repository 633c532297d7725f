/** A page renders into `main` and returns what to undo when the user leaves it (listeners, timers). */
export type Page = (main: HTMLElement, params: string[]) => (() => void) | void;
