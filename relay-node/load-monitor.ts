import { type IntervalHistogram, monitorEventLoopDelay, performance } from "node:perf_hooks";

/**
 * Load as the event loop feels it. The relay is one thread: when the loop lags, every session's packets wait, so
 * lag is the signal for shedding (refusing new handshakes while existing sessions keep forwarding). Utilization
 * feeds the heartbeat's `load`.
 */
export interface LoadSample {
  /** 99th percentile event-loop delay since the last sample, ms. */
  readonly lagP99Ms: number;
  /** Share of time the loop was busy since the last sample, 0..1. */
  readonly utilization: number;
}

/** Samples event-loop delay and utilization between calls to {@link LoadMonitor.sample}. */
export class LoadMonitor {
  private readonly delay: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  private elu = performance.eventLoopUtilization();
  private last: LoadSample = { lagP99Ms: 0, utilization: 0 };

  constructor() {
    this.delay.enable();
  }

  /** Measures since the previous call and starts a new interval. */
  sample(): LoadSample {
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, this.elu).utilization;
    this.elu = now;
    const p99 = this.delay.count > 0 ? this.delay.percentile(99) / 1e6 : 0;
    this.delay.reset();
    this.last = { lagP99Ms: p99, utilization: Number.isFinite(utilization) ? utilization : 0 };
    return this.last;
  }

  get latest(): LoadSample {
    return this.last;
  }

  stop(): void {
    this.delay.disable();
  }
}
