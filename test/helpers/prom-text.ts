// parse-prometheus-text-format ships no types; the shape below is what it returns (prom2json's).
// @ts-expect-error no declaration file
import parse from "parse-prometheus-text-format";

export interface Sample {
  labels?: Record<string, string>;
  value?: string;
  count?: string;
  sum?: string;
  buckets?: Record<string, string>;
}
export interface Family {
  name: string;
  help: string;
  type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
  metrics: Sample[];
}

/**
 * Every family of an exposition, by name. The parser folds a histogram's series into one when they
 * carry labels other than `le` (it only knows unlabelled histograms), so histograms are read as
 * their three sample families instead: `<name>_bucket`, `<name>_sum` and `<name>_count`, each series
 * with its labels (the histogram's own name is left with no samples). `histograms` names the families that were declared histograms.
 */
export function parseMetrics(text: string): Map<string, Family> & { histograms: Set<string> } {
  const histograms = new Set<string>();
  const untyped = text.replace(/^# TYPE (\S+) histogram$/gm, (_, name: string) => {
    histograms.add(name);
    return `# TYPE ${name} untyped`;
  });
  const families = new Map<string, Family>();
  // A histogram's sample families come once per series (bucket, sum, count, then the next series).
  for (const f of (parse as (t: string) => Family[])(untyped)) {
    const seen = families.get(f.name);
    if (seen) seen.metrics.push(...f.metrics);
    else families.set(f.name, f);
  }
  return Object.assign(families, { histograms });
}

/** Series (label sets) across every family: what a scrape stores. */
export function seriesCount(families: Map<string, Family>): number {
  return [...families.values()].reduce((n, f) => n + f.metrics.length, 0);
}

export function find(f: Family | undefined, labels: Record<string, string>): Sample | undefined {
  return f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}
