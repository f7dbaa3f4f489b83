import { allocChannelPayload, CHANNEL_HEADER_LEN, Channel, FeedbackKind } from "../channels/channel.ts";
import { type Decoded, EncodeError, fail, ok, viewOf } from "../wire/decode.ts";

/**
 * Congestion reports (receiver -> sender, feedback channel), in the spirit of RTP transport-wide
 * congestion control feedback: for a run of consecutive packet sequence numbers, which arrived and when.
 *
 * The sequence number is a per-direction counter the sender assigns to every datagram it wants measured;
 * the DATA frame counter is the natural choice (already authenticated, one per datagram, never reused in
 * a session). The receiver's clock is never compared with the sender's: the sender uses only differences
 * of arrival times, so the clocks need no synchronisation.
 *
 * Feedback channel body, kind = FeedbackKind.CongestionReport:
 *
 *   0      1      2         4               12             16                 16+B            16+B+2(r-1)
 *   +------+------+---------+---------------+--------------+------------------+---------------+
 *   | kind | rsv=0| count n | base_seq u64  | base_time u32| received bitmap  | arrival deltas|
 *   +------+------+---------+---------------+--------------+------------------+---------------+
 *
 * - count: packets covered, 1..{@link MAX_REPORT_PACKETS}: base_seq .. base_seq + n - 1.
 * - base_seq: below 2^53 (as DATA counters are).
 * - base_time: arrival of the first received packet, receiver clock in {@link TICK_MS} ticks modulo 2^32
 *   (wraps every 29.8 h; the sender unwraps against the previous report). 0 when nothing arrived.
 * - received bitmap: B = ceil(n / 8) bytes, bit i (LSB first in byte i >> 3) set when packet
 *   base_seq + i arrived; bits past n must be 0.
 * - arrival deltas: one int16 (ticks) for each received packet after the first (r = bits set), in
 *   sequence order, relative to the previous received packet; negative when reordered. A gap that does not
 *   fit (more than 819 ms) ends the report and the next report starts there.
 */
export const CONGESTION_REPORT_HEADER_LEN = 16;
/** Packets one report may cover: bounds the report at 16 + 64 + 1022 = 1102 bytes. */
export const MAX_REPORT_PACKETS = 512;
/** Arrival-time resolution in milliseconds (25 µs: a 1200-byte packet lasts 96 µs at 100 Mbit/s). */
export const TICK_MS = 0.025;
/** Packets the recorder holds between reports; a larger jump abandons the older ones. */
export const MAX_RECORDER_SPAN = 4 * MAX_REPORT_PACKETS;

const MAX_SEQ = Number.MAX_SAFE_INTEGER;
const TICKS_MOD = 0x1_0000_0000;

/** A decoded report. Byte fields are views of the body. */
export interface CongestionReport {
  readonly baseSeq: number;
  readonly count: number;
  /** Receiver clock of the first received packet, in ticks modulo 2^32. */
  readonly baseTime: number;
  /** Packets that arrived. */
  readonly receivedCount: number;
  readonly bitmap: Uint8Array;
  readonly deltas: Uint8Array;
}

function popcount8(byte: number): number {
  let b = byte - ((byte >> 1) & 0x55);
  b = (b & 0x33) + ((b >> 2) & 0x33);
  return (b + (b >> 4)) & 0x0f;
}

/**
 * Decodes a feedback channel body holding a congestion report. Never throws: `unknown-type` for another
 * feedback kind, `too-short`/`bad-length` when the size disagrees with the count and the bitmap,
 * `bad-field` for a zero or oversized count, a sequence at or above 2^53, set reserved or padding bits, or
 * a nonzero base_time with nothing received.
 */
export function decodeCongestionReport(body: Uint8Array): Decoded<CongestionReport> {
  if (body.length > CONGESTION_REPORT_HEADER_LEN + MAX_REPORT_PACKETS / 8 + 2 * (MAX_REPORT_PACKETS - 1)) {
    return fail("too-large");
  }
  if (body.length < 1) return fail("too-short");
  if (body[0] !== FeedbackKind.CongestionReport) return fail("unknown-type");
  if (body.length < CONGESTION_REPORT_HEADER_LEN) return fail("too-short");
  const view = viewOf(body);
  if (view.getUint8(1) !== 0) return fail("bad-field");
  const count = view.getUint16(2, true);
  if (count < 1 || count > MAX_REPORT_PACKETS) return fail("bad-field");
  const high = view.getUint32(8, true);
  if (high >= 0x20_0000) return fail("bad-field");
  const baseSeq = high * 0x1_0000_0000 + view.getUint32(4, true);
  // Subtract rather than add: near 2^53 an addition would round.
  if (baseSeq > MAX_SEQ - (count - 1)) return fail("bad-field");
  const baseTime = view.getUint32(12, true);
  const bitmapLength = (count + 7) >> 3;
  const bitmapEnd = CONGESTION_REPORT_HEADER_LEN + bitmapLength;
  if (body.length < bitmapEnd) return fail("too-short");
  const bitmap = body.subarray(CONGESTION_REPORT_HEADER_LEN, bitmapEnd);
  const padding = count & 7;
  if (padding !== 0 && ((bitmap[bitmapLength - 1] as number) & (0xff << padding) & 0xff) !== 0) {
    return fail("bad-field");
  }
  let received = 0;
  for (let i = 0; i < bitmapLength; i++) received += popcount8(bitmap[i] as number);
  if (received === 0 && baseTime !== 0) return fail("bad-field");
  const deltaBytes = received === 0 ? 0 : 2 * (received - 1);
  if (body.length !== bitmapEnd + deltaBytes) return fail("bad-length");
  return ok({
    baseSeq,
    count,
    baseTime,
    receivedCount: received,
    bitmap,
    deltas: body.subarray(bitmapEnd),
  });
}

/**
 * Arrival times of a report's packets, in ticks relative to `baseTime` (0 for the first received
 * packet), NaN for packets that did not arrive. Index i is packet baseSeq + i.
 */
export function reportArrivals(report: CongestionReport): Float64Array {
  const out = new Float64Array(report.count);
  const deltas = viewOf(report.deltas);
  let time = 0;
  let nth = 0;
  for (let i = 0; i < report.count; i++) {
    if ((((report.bitmap[i >> 3] as number) >> (i & 7)) & 1) === 0) {
      out[i] = Number.NaN;
      continue;
    }
    if (nth > 0) time += deltas.getInt16(2 * (nth - 1), true);
    out[i] = time;
    nth++;
  }
  return out;
}

/**
 * Builds one report as a complete DATA plaintext (feedback channel byte included). `arrivals[i]` is the
 * arrival of packet baseSeq + i in ticks (any integers; only differences and base_time mod 2^32 are
 * sent), or undefined when it did not arrive. Throws {@link EncodeError} when a delta does not fit int16.
 */
export function encodeCongestionReport(
  baseSeq: number,
  arrivals: readonly (number | undefined)[],
): Uint8Array {
  const count = arrivals.length;
  if (count < 1 || count > MAX_REPORT_PACKETS) throw new EncodeError("report covers 1..512 packets");
  if (!Number.isInteger(baseSeq) || baseSeq < 0 || baseSeq > MAX_SEQ - (count - 1)) {
    throw new EncodeError("sequence numbers must be below 2^53");
  }
  let received = 0;
  for (const arrival of arrivals) if (arrival !== undefined) received++;
  const bitmapLength = (count + 7) >> 3;
  const bodyLength = CONGESTION_REPORT_HEADER_LEN + bitmapLength + (received === 0 ? 0 : 2 * (received - 1));
  const out = allocChannelPayload(Channel.Feedback, bodyLength);
  const body = out.subarray(CHANNEL_HEADER_LEN);
  const view = viewOf(body);
  view.setUint8(0, FeedbackKind.CongestionReport);
  view.setUint16(2, count, true);
  view.setUint32(4, baseSeq >>> 0, true);
  view.setUint32(8, Math.floor(baseSeq / 0x1_0000_0000), true);
  let previous: number | undefined;
  let deltaOffset = CONGESTION_REPORT_HEADER_LEN + bitmapLength;
  for (let i = 0; i < count; i++) {
    const arrival = arrivals[i];
    if (arrival === undefined) continue;
    if (!Number.isInteger(arrival)) throw new EncodeError("arrival ticks must be integers");
    body[CONGESTION_REPORT_HEADER_LEN + (i >> 3)] =
      (body[CONGESTION_REPORT_HEADER_LEN + (i >> 3)] as number) | (1 << (i & 7));
    if (previous === undefined) {
      view.setUint32(12, ((arrival % TICKS_MOD) + TICKS_MOD) % TICKS_MOD, true);
    } else {
      const delta = arrival - previous;
      if (delta < -0x8000 || delta > 0x7fff) throw new EncodeError("arrival delta does not fit int16");
      view.setInt16(deltaOffset, delta, true);
      deltaOffset += 2;
    }
    previous = arrival;
  }
  return out;
}

/**
 * Receiver side: records (sequence, arrival) of every measured datagram and turns them into reports.
 * Call {@link FeedbackRecorder.build} on a timer (every 20–50 ms is typical) and send what it returns.
 *
 * Bounded: it covers at most {@link MAX_RECORDER_SPAN} sequence numbers between reports; a packet older
 * than the last report (reordered past it, or duplicated) is counted as late and not reported.
 */
export class FeedbackRecorder {
  /** First sequence not yet reported; -1 before the first packet. */
  #start = -1;
  /** Highest sequence recorded + 1. */
  #end = -1;
  /** Arrival ticks by (seq - start); undefined = not arrived. */
  #arrivals: (number | undefined)[] = [];
  #late = 0;
  #abandoned = 0;

  /** Packets that arrived after their slot was reported (or twice). */
  get late(): number {
    return this.#late;
  }

  /** Sequence numbers skipped because a jump exceeded the recorder span. */
  get abandoned(): number {
    return this.#abandoned;
  }

  /** True when {@link build} would return something. */
  get hasPending(): boolean {
    return this.#end > this.#start;
  }

  /** Records that packet `seq` arrived at `arrivalMs` (the receiver's clock). */
  onPacket(seq: number, arrivalMs: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq > MAX_SEQ || !Number.isFinite(arrivalMs)) return;
    if (this.#start < 0) {
      this.#start = seq;
      this.#end = seq;
    }
    if (seq < this.#start) {
      this.#late++;
      return;
    }
    if (seq - this.#start >= MAX_RECORDER_SPAN) {
      // Keep the newest span: older holes would only be reported as losses after a long silence anyway.
      const newStart = seq - MAX_RECORDER_SPAN + 1;
      const drop = Math.min(newStart - this.#start, this.#arrivals.length);
      this.#abandoned += newStart - this.#start;
      this.#arrivals = this.#arrivals.slice(drop);
      this.#start = newStart;
      if (this.#end < newStart) this.#end = newStart;
    }
    const index = seq - this.#start;
    if (this.#arrivals[index] !== undefined) {
      this.#late++;
      return;
    }
    while (this.#arrivals.length < index) this.#arrivals.push(undefined);
    this.#arrivals[index] = Math.round(arrivalMs / TICK_MS);
    if (seq + 1 > this.#end) this.#end = seq + 1;
  }

  /**
   * Reports (complete DATA plaintexts) covering every sequence from the last report up to the highest
   * recorded one; packets in between that did not arrive are reported lost.
   */
  build(): Uint8Array[] {
    const out: Uint8Array[] = [];
    const total = this.#end - this.#start;
    let first = 0;
    while (first < total) {
      let last = first;
      let previous: number | undefined;
      // Extend the chunk while it stays within the count and every delta fits int16.
      while (last < total && last - first < MAX_REPORT_PACKETS) {
        const arrival = this.#arrivals[last];
        if (arrival !== undefined && previous !== undefined) {
          const delta = arrival - previous;
          if (delta < -0x8000 || delta > 0x7fff) break;
        }
        if (arrival !== undefined) previous = arrival;
        last++;
      }
      out.push(encodeCongestionReport(this.#start + first, this.#arrivals.slice(first, last)));
      first = last;
    }
    if (total > 0) {
      this.#start = this.#end;
      this.#arrivals = [];
    }
    return out;
  }
}
