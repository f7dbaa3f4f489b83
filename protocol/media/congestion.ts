import { type CongestionReport, reportArrivals, TICK_MS } from "./congestion-feedback.ts";

/**
 * Sender-side, delay-based congestion control after Google Congestion Control (draft-ietf-rmcat-gcc-02
 * and libwebrtc's trendline estimator), with a LEDBAT-style ceiling on standing queue delay (RFC 6817):
 *
 * 1. Packets are grouped by send time (5 ms bursts). For consecutive groups the delay variation
 *    d = (arrival_i - arrival_{i-1}) - (send_i - send_{i-1}) is accumulated, smoothed, and a least-squares
 *    line is fitted over the last 20 groups: its slope is the queuing-delay trend (GCC §5.3, trendline).
 * 2. An adaptive threshold turns the trend into overuse / normal / underuse (GCC §5.4). Independently,
 *    a queue delay (one-way delay above its recent minimum) beyond `maxQueueDelayMs` counts as overuse, so
 *    a queue that stopped growing but never drained is still noticed.
 * 3. AIMD (GCC §5.5): overuse sets the target to beta x the measured receive rate; normal increases it,
 *    multiplicatively while far below the last known capacity and additively (about one packet per
 *    response time) near it; underuse holds.
 * 4. Loss (GCC §6): above 10% the target drops by half the loss ratio; between 2% and 10% it holds.
 *
 * Pure: times are the caller's milliseconds (sender clock for `now` and send times; the receiver's clock
 * only through differences inside reports). Feed every sent datagram to {@link CongestionController.onPacketSent}
 * and every decoded report to {@link CongestionController.onFeedback}; read the target for the encoder and the
 * pacing rate for the pacer.
 */
export interface CongestionOptions {
  /** Bits per second. */
  readonly minBitrate?: number;
  readonly maxBitrate?: number;
  readonly startBitrate?: number;
  /** Pacing rate = factor x target, so the pacer drains encoder bursts (GCC §4 uses 2.5; we use 1.5). */
  readonly pacingFactor?: number;
  /** Queue delay treated as overuse even when it is not growing (ms). */
  readonly maxQueueDelayMs?: number;
  /** Multiplicative increase per second while far from the known capacity (GCC: 1.08). */
  readonly increasePerSecond?: number;
  /** Multiplicative increase per second before the first congestion signal (a gentle slow start). */
  readonly startupIncreasePerSecond?: number;
  /** Loss ratio above which the target decreases (GCC: 0.1). */
  readonly lossDecreaseThreshold?: number;
}

/** What the delay detector concluded from the last report. */
export type BandwidthUsage = "normal" | "overuse" | "underuse";

const DEFAULTS = {
  minBitrate: 150_000,
  maxBitrate: 50_000_000,
  startBitrate: 300_000,
  pacingFactor: 1.5,
  maxQueueDelayMs: 80,
  increasePerSecond: 1.08,
  startupIncreasePerSecond: 1.5,
  lossDecreaseThreshold: 0.1,
} as const;

// GCC constants (draft-ietf-rmcat-gcc-02 and libwebrtc trendline_estimator.cc).
const BURST_MS = 5;
const TREND_WINDOW = 20;
const TREND_SMOOTHING = 0.9;
const TREND_GAIN = 4;
const TREND_MAX_DELTAS = 60;
const THRESHOLD_INITIAL = 12.5;
const THRESHOLD_MIN = 6;
const THRESHOLD_MAX = 600;
const K_UP = 0.0087;
const K_DOWN = 0.039;
const OVERUSE_TIME_MS = 10;
const BETA = 0.85;
const LOSS_INCREASE_LIMIT = 0.02;
const LOSS_WINDOW_MS = 1000;
const LOSS_MIN_PACKETS = 20;
const RATE_WINDOW_MS = 500;
const SHORT_RATE_WINDOW_MS = 150;
const MAX_UPDATE_STEP_MS = 300;
/** Within this fraction of the capacity estimate the increase is additive (GCC uses 3 sigma). */
const CAPACITY_BAND = 0.15;
/** Sent-packet history: about 4 s at 20 Mbit/s of 1200-byte packets. */
const HISTORY = 8192;
/** The base (minimum) one-way delay is kept per 1 s bucket over the last 10 s, so route changes age out. */
const BASE_BUCKET_MS = 1000;
const BASE_BUCKETS = 10;

interface Group {
  firstSend: number;
  lastSend: number;
  lastArrival: number;
}

function checkRate(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive number`);
  return value;
}

/** The sender's congestion controller: target bitrate for the encoder, pacing rate for the pacer. */
export class CongestionController {
  readonly #min: number;
  readonly #max: number;
  readonly #pacingFactor: number;
  readonly #maxQueueDelay: number;
  readonly #increase: number;
  readonly #startupIncrease: number;
  readonly #lossThreshold: number;

  // Sent-packet history, a ring indexed by seq % HISTORY (seq stored to detect overwritten slots).
  readonly #histSeq = new Float64Array(HISTORY).fill(-1);
  readonly #histSend = new Float64Array(HISTORY);
  readonly #histSize = new Uint32Array(HISTORY);
  readonly #histReported = new Uint8Array(HISTORY);

  #target: number;
  #lastUpdate = Number.NaN;
  #lastDecrease = Number.NEGATIVE_INFINITY;
  #lastLossDecrease = Number.NEGATIVE_INFINITY;
  #congested = false;
  #usage: BandwidthUsage = "normal";

  // Receiver clock, unwrapped ticks of the previous report's base time.
  #baseTicks = Number.NaN;

  // Trendline state.
  #group: Group | undefined;
  #prevGroup: Group | undefined;
  #firstArrival = Number.NaN;
  #accumulated = 0;
  #smoothed = 0;
  #deltas = 0;
  readonly #trendX: number[] = [];
  readonly #trendY: number[] = [];
  #trend = 0;
  #previousTrend = 0;
  #threshold = THRESHOLD_INITIAL;
  #overuseTime = -1;
  #overuseCount = 0;

  // Queue delay: one-way delay (arrival minus send, offset included) minus its recent minimum.
  readonly #baseMin: number[] = [];
  #baseBucketStart = Number.NaN;
  #queueDelay = 0;

  // Loss and receive rate windows.
  readonly #lossLog: { at: number; lost: number; total: number }[] = [];
  #loss = 0;
  // Receive rate over two windows: the long one caps increases, the short one sizes decreases, so a
  // sudden capacity drop is measured at once instead of averaged with the rate before it.
  readonly #longRate = new RateWindow(RATE_WINDOW_MS);
  readonly #shortRate = new RateWindow(SHORT_RATE_WINDOW_MS);
  #receiveRate = 0;

  // Link capacity estimate: the receive rate at decreases (GCC §5.5); NaN while unknown.
  #capacity = Number.NaN;

  #rtt = 100;

  constructor(options: CongestionOptions = {}) {
    this.#min = checkRate("minBitrate", options.minBitrate ?? DEFAULTS.minBitrate);
    this.#max = checkRate("maxBitrate", options.maxBitrate ?? DEFAULTS.maxBitrate);
    const start = checkRate("startBitrate", options.startBitrate ?? DEFAULTS.startBitrate);
    if (!(this.#min <= start && start <= this.#max)) throw new RangeError("need min <= start <= max bitrate");
    this.#target = start;
    this.#pacingFactor = checkRate("pacingFactor", options.pacingFactor ?? DEFAULTS.pacingFactor);
    this.#maxQueueDelay = checkRate("maxQueueDelayMs", options.maxQueueDelayMs ?? DEFAULTS.maxQueueDelayMs);
    this.#increase = checkRate("increasePerSecond", options.increasePerSecond ?? DEFAULTS.increasePerSecond);
    this.#startupIncrease = checkRate(
      "startupIncreasePerSecond",
      options.startupIncreasePerSecond ?? DEFAULTS.startupIncreasePerSecond,
    );
    this.#lossThreshold = checkRate(
      "lossDecreaseThreshold",
      options.lossDecreaseThreshold ?? DEFAULTS.lossDecreaseThreshold,
    );
    if (this.#increase < 1 || this.#startupIncrease < 1)
      throw new RangeError("increase factors must be >= 1");
  }

  /** Target bitrate for the encoder (bits per second). */
  get targetBitrate(): number {
    return this.#target;
  }

  /** Rate at which the pacer releases datagrams (bits per second). */
  get pacingRate(): number {
    return this.#target * this.#pacingFactor;
  }

  /** The detector's last verdict. */
  get usage(): BandwidthUsage {
    return this.#usage;
  }

  /** Estimated standing queue delay (ms). */
  get queueDelayMs(): number {
    return this.#queueDelay;
  }

  /** Loss ratio over the last second of reports. */
  get lossRatio(): number {
    return this.#loss;
  }

  /** Bits per second the receiver measured arriving over the last half second. */
  get receiveRate(): number {
    return this.#receiveRate;
  }

  /** Smoothed round trip (ms), from report arrival minus the send time of the newest packet it covers. */
  get rttMs(): number {
    return this.#rtt;
  }

  /** Records a sent datagram. `seq` must increase by one per measured datagram (e.g. the DATA counter). */
  onPacketSent(seq: number, bytes: number, now: number): void {
    if (!Number.isInteger(seq) || seq < 0) return;
    const slot = seq % HISTORY;
    this.#histSeq[slot] = seq;
    this.#histSend[slot] = now;
    this.#histSize[slot] = bytes;
    this.#histReported[slot] = 0;
  }

  /**
   * Applies one report from the peer at the sender's time `now`. Packets not in the history (too old,
   * never sent, already reported) are ignored, so a replayed or forged report cannot count twice.
   */
  onFeedback(report: CongestionReport, now: number): void {
    const arrivals = reportArrivals(report);
    let baseTicks = Number.NaN;
    if (report.receivedCount > 0) {
      // Unwrap the 32-bit tick clock against the previous report (2^31 ticks = 14.9 h of margin).
      baseTicks = Number.isNaN(this.#baseTicks)
        ? report.baseTime
        : this.#baseTicks + ((report.baseTime - (this.#baseTicks % 0x1_0000_0000)) | 0);
      this.#baseTicks = baseTicks;
    }
    let lost = 0;
    let total = 0;
    let newestSend = Number.NaN;
    for (let i = 0; i < report.count; i++) {
      const seq = report.baseSeq + i;
      const slot = seq % HISTORY;
      if (this.#histSeq[slot] !== seq || this.#histReported[slot] === 1) continue;
      this.#histReported[slot] = 1;
      total++;
      const offset = arrivals[i] as number;
      if (Number.isNaN(offset)) {
        lost++;
        continue;
      }
      const send = this.#histSend[slot] as number;
      const arrival = (baseTicks + offset) * TICK_MS;
      newestSend = send;
      this.#onArrival(send, arrival, this.#histSize[slot] as number, now);
    }
    if (total === 0) return;
    if (!Number.isNaN(newestSend) && now >= newestSend) {
      this.#rtt = 0.875 * this.#rtt + 0.125 * (now - newestSend);
    }
    this.#updateLoss(lost, total, now);
    this.#updateRate(now);
  }

  #onArrival(send: number, arrival: number, bytes: number, now: number): void {
    this.#longRate.add(arrival, bytes);
    this.#shortRate.add(arrival, bytes);
    this.#trackBaseDelay(arrival - send, now);
    const group = this.#group;
    if (group === undefined) {
      this.#group = { firstSend: send, lastSend: send, lastArrival: arrival };
      return;
    }
    // Reordered into an earlier burst: GCC drops such packets from the delay estimate.
    if (send < group.firstSend) return;
    if (send - group.firstSend <= BURST_MS) {
      group.lastSend = Math.max(group.lastSend, send);
      group.lastArrival = Math.max(group.lastArrival, arrival);
      return;
    }
    const previous = this.#prevGroup;
    if (previous !== undefined) {
      const variation = group.lastArrival - previous.lastArrival - (group.lastSend - previous.lastSend);
      this.#trendSample(group.lastArrival, variation, group.lastArrival - previous.lastArrival);
    }
    this.#prevGroup = group;
    this.#group = { firstSend: send, lastSend: send, lastArrival: arrival };
  }

  #trackBaseDelay(oneWay: number, now: number): void {
    if (Number.isNaN(this.#baseBucketStart) || now - this.#baseBucketStart >= BASE_BUCKET_MS) {
      this.#baseBucketStart = now;
      this.#baseMin.push(oneWay);
      if (this.#baseMin.length > BASE_BUCKETS) this.#baseMin.shift();
    } else {
      const last = this.#baseMin.length - 1;
      this.#baseMin[last] = Math.min(this.#baseMin[last] as number, oneWay);
    }
    this.#queueDelay = oneWay - Math.min(...this.#baseMin);
  }

  #trendSample(arrival: number, variation: number, sinceLast: number): void {
    if (Number.isNaN(this.#firstArrival)) this.#firstArrival = arrival;
    this.#deltas = Math.min(this.#deltas + 1, TREND_MAX_DELTAS);
    this.#accumulated += variation;
    this.#smoothed = TREND_SMOOTHING * this.#smoothed + (1 - TREND_SMOOTHING) * this.#accumulated;
    this.#trendX.push(arrival - this.#firstArrival);
    this.#trendY.push(this.#smoothed);
    if (this.#trendX.length > TREND_WINDOW) {
      this.#trendX.shift();
      this.#trendY.shift();
    }
    if (this.#trendX.length === TREND_WINDOW) {
      const slope = linearSlope(this.#trendX, this.#trendY);
      if (slope !== undefined) this.#trend = slope;
    }
    this.#detect(Math.max(0, Math.min(sinceLast, 100)));
  }

  /** GCC §5.4 over-use detector with the adaptive threshold. */
  #detect(sinceLast: number): void {
    const modified = Math.min(this.#deltas, TREND_MAX_DELTAS) * this.#trend * TREND_GAIN;
    let usage: BandwidthUsage = "normal";
    if (modified > this.#threshold) {
      this.#overuseTime = this.#overuseTime < 0 ? sinceLast / 2 : this.#overuseTime + sinceLast;
      this.#overuseCount++;
      if (
        this.#overuseTime > OVERUSE_TIME_MS &&
        this.#overuseCount > 1 &&
        this.#trend >= this.#previousTrend
      ) {
        this.#overuseTime = 0;
        this.#overuseCount = 0;
        usage = "overuse";
      } else {
        usage = this.#usage === "overuse" ? "overuse" : "normal";
      }
    } else if (modified < -this.#threshold) {
      this.#overuseTime = -1;
      this.#overuseCount = 0;
      usage = "underuse";
    } else {
      this.#overuseTime = -1;
      this.#overuseCount = 0;
    }
    this.#previousTrend = this.#trend;
    // Threshold adaptation (GCC §5.4), skipping outliers so one spike cannot open it wide.
    const magnitude = Math.abs(modified);
    if (magnitude <= this.#threshold + 15) {
      const k = magnitude < this.#threshold ? K_DOWN : K_UP;
      this.#threshold += k * (magnitude - this.#threshold) * sinceLast;
      this.#threshold = Math.min(Math.max(this.#threshold, THRESHOLD_MIN), THRESHOLD_MAX);
    }
    if (this.#queueDelay > this.#maxQueueDelay && usage !== "underuse") usage = "overuse";
    this.#usage = usage;
  }

  #updateLoss(lost: number, total: number, now: number): void {
    this.#lossLog.push({ at: now, lost, total });
    while (this.#lossLog.length > 0 && now - (this.#lossLog[0]?.at ?? now) > LOSS_WINDOW_MS) {
      this.#lossLog.shift();
    }
    let sumLost = 0;
    let sumTotal = 0;
    for (const entry of this.#lossLog) {
      sumLost += entry.lost;
      sumTotal += entry.total;
    }
    this.#loss = sumTotal >= LOSS_MIN_PACKETS ? sumLost / sumTotal : 0;
  }

  #updateRate(now: number): void {
    this.#receiveRate = this.#longRate.rate();
    const step = Number.isNaN(this.#lastUpdate)
      ? 0
      : Math.min(Math.max(now - this.#lastUpdate, 0), MAX_UPDATE_STEP_MS);
    this.#lastUpdate = now;
    let target = this.#target;
    const responseTime = this.#rtt + 100;

    if (this.#usage === "overuse") {
      const measured = Math.min(this.#receiveRate, this.#shortRate.rate());
      if (now - this.#lastDecrease >= responseTime && measured > 0) {
        target = Math.min(target, BETA * measured);
        this.#updateCapacity(measured);
        this.#lastDecrease = now;
        this.#congested = true;
      }
    } else if (this.#usage === "normal" && this.#loss < LOSS_INCREASE_LIMIT) {
      // The link got faster than we believed: forget the estimate and grow multiplicatively again.
      if (this.#receiveRate > this.#capacity * (1 + CAPACITY_BAND)) this.#capacity = Number.NaN;
      const near = target >= this.#capacity * (1 - CAPACITY_BAND);
      if (near) {
        // About one 1200-byte packet per response time (GCC §5.5 additive increase), at least 4 kbit/s/s.
        const perSecond = Math.max(4000, (1200 * 8 * 1000) / responseTime);
        target += (perSecond * step) / 1000;
      } else {
        const factor = this.#congested ? this.#increase : this.#startupIncrease;
        target *= factor ** (step / 1000);
      }
      // Do not run ahead of what actually gets through (app-limited or not yet measured).
      if (this.#receiveRate > 0)
        target = Math.min(target, Math.max(this.#target, 1.5 * this.#receiveRate + 10_000));
    }

    if (this.#loss > this.#lossThreshold && now - this.#lastLossDecrease >= responseTime) {
      target = Math.min(target, this.#target * (1 - 0.5 * this.#loss));
      this.#lastLossDecrease = now;
      this.#congested = true;
    }
    this.#target = Math.min(Math.max(target, this.#min), this.#max);
  }

  #updateCapacity(measured: number): void {
    // Exponential average of the receive rate at decreases: where the bottleneck was last found.
    this.#capacity = Number.isNaN(this.#capacity) ? measured : 0.9 * this.#capacity + 0.1 * measured;
  }
}

/** Bytes that arrived within the last `span` ms of receiver time, as a rate. */
class RateWindow {
  readonly #span: number;
  // Parallel arrays read from #head; compacted now and then instead of shifted per packet.
  #arrival: number[] = [];
  #bytes: number[] = [];
  #head = 0;
  #sum = 0;

  constructor(span: number) {
    this.#span = span;
  }

  add(arrival: number, bytes: number): void {
    this.#arrival.push(arrival);
    this.#bytes.push(bytes);
    this.#sum += bytes;
    // Bounded even if a broken peer reports every arrival at the same instant (the window never slides).
    if (this.#arrival.length - this.#head > HISTORY) {
      this.#sum -= this.#bytes[this.#head] as number;
      this.#head++;
    }
  }

  /** Bits per second over the window ending at the newest arrival; 0 before any. */
  rate(): number {
    const count = this.#arrival.length;
    if (count === 0) return 0;
    const last = this.#arrival[count - 1] as number;
    while (this.#head < count && last - (this.#arrival[this.#head] as number) > this.#span) {
      this.#sum -= this.#bytes[this.#head] as number;
      this.#head++;
    }
    const first = this.#arrival[this.#head] as number;
    if (this.#head > 4096) {
      this.#arrival = this.#arrival.slice(this.#head);
      this.#bytes = this.#bytes.slice(this.#head);
      this.#head = 0;
    }
    // Until half a window of arrivals exists, the span is too short to divide by.
    const span = Math.max(last - first, this.#span / 2);
    return (this.#sum * 8 * 1000) / span;
  }
}

/** Least-squares slope of y over x, or undefined when x does not vary. */
export function linearSlope(x: readonly number[], y: readonly number[]): number | undefined {
  const n = Math.min(x.length, y.length);
  if (n < 2) return undefined;
  let sumX = 0;
  let sumY = 0;
  for (let i = 0; i < n; i++) {
    sumX += x[i] as number;
    sumY += y[i] as number;
  }
  const meanX = sumX / n;
  const meanY = sumY / n;
  let numerator = 0;
  let denominator = 0;
  for (let i = 0; i < n; i++) {
    const dx = (x[i] as number) - meanX;
    numerator += dx * ((y[i] as number) - meanY);
    denominator += dx * dx;
  }
  return denominator === 0 ? undefined : numerator / denominator;
}
