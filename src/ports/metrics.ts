/**
 * What the API layer reports to the daemon's metrics (src/adapters/metrics/). Plain calls with
 * bounded values only, so neither the routes nor the guest stream know the exposition library.
 */
export interface RequestMetrics {
  /** One answered request: its route pattern (`/v1/vms/:name`, never the concrete path), method and status. */
  request(route: string, method: string, status: number, seconds: number): void;
}

export type ChannelDirection = "to_guest" | "from_guest";

export interface ChannelMetrics {
  opened(): void;
  closed(): void;
  bytes(direction: ChannelDirection, n: number): void;
}

/** The Prometheus text exposition of everything collected, read at scrape time. */
export interface MetricsExposition {
  render(): Promise<{ contentType: string; body: string }>;
}
