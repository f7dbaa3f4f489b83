import { type Decoded, EncodeError, fail, ok, viewOf } from "../wire/decode.ts";
import { allocChannelPayload, CHANNEL_HEADER_LEN, Channel, MAX_CHANNEL_BODY } from "./channel.ts";
import {
  type InputEvent,
  inputEventLength,
  MAX_INPUT_EVENT_LEN,
  readInputEvent,
  writeInputEvent,
} from "./input-events.ts";

/**
 * Reliable, ordered input over lossy UDP (DESIGN.md "Endpoint data plane": input is reliable and
 * prioritised). The sender numbers every event, batches unacknowledged events into EVENTS messages and
 * retransmits on a timer; the receiver delivers each event exactly once, in order, and answers every
 * EVENTS message with a cumulative ACK plus a 32-event selective-ack bitmap.
 *
 * Priority: input must never queue behind video. Each tick the caller drains {@link ReliableInputSender.poll}
 * and sends those datagrams BEFORE asking the video pacer for anything, and does not count them against the
 * pacing budget (they are a few hundred bytes a second).
 *
 * Sequence numbers are unbounded safe integers inside this module and travel as their low 32 bits; each
 * side extends a wire value to the number nearest its own reference (RTP-style), which is unambiguous
 * because both sides stay within {@link MAX_INPUT_WINDOW} of each other.
 *
 * Input channel body, byte 0 = message kind:
 */
export const InputMessageKind = {
  /** kind | count u8 (1..255) | first_seq u32 | count events back to back (input-events.ts) */
  Events: 0x01,
  /**
   * kind | reserved u8 = 0 | next_seq u32 (all before it delivered) | sack u32 (bit i: next_seq+1+i held)
   * | echo_seq u32 (first_seq of the EVENTS message this ACK answers, for round-trip samples)
   */
  Ack: 0x02,
} as const;
export type InputMessageKind = (typeof InputMessageKind)[keyof typeof InputMessageKind];

export const EVENTS_HEADER_LEN = 6;
export const ACK_LEN = 14;
/** Bits in the selective-ack bitmap. */
export const SACK_BITS = 32;
/** Events one EVENTS message may carry (the count is one byte). */
export const MAX_EVENTS_PER_MESSAGE = 255;
/** Default and largest window: events in flight (sender) and in the reorder buffer (receiver). */
export const DEFAULT_INPUT_WINDOW = 1024;
export const MAX_INPUT_WINDOW = 1 << 15;

export interface EventsMessage {
  readonly kind: typeof InputMessageKind.Events;
  /** Low 32 bits of the first event's sequence number. */
  readonly firstSeq: number;
  readonly events: readonly InputEvent[];
}
export interface AckMessage {
  readonly kind: typeof InputMessageKind.Ack;
  /** Low 32 bits of the next sequence number the receiver will deliver. */
  readonly nextSeq: number;
  /** Bit i set: event nextSeq + 1 + i is held by the receiver. */
  readonly sack: number;
  /** Low 32 bits of the first sequence of the EVENTS message this ACK answers. */
  readonly echoSeq: number;
}
export type InputMessage = EventsMessage | AckMessage;

/**
 * Decodes an input channel body (the bytes after the channel byte). Never throws: bodies above
 * {@link MAX_CHANNEL_BODY} are `too-large`, unassigned kinds `unknown-type`, an ACK of the wrong size or
 * events that do not exactly fill the body `bad-length`, a zero count or reserved bits `bad-field`; event
 * errors are passed through.
 */
export function decodeInputMessage(body: Uint8Array): Decoded<InputMessage> {
  if (body.length > MAX_CHANNEL_BODY) return fail("too-large");
  if (body.length < 1) return fail("too-short");
  const kind = body[0] as number;
  if (kind === InputMessageKind.Ack) {
    if (body.length !== ACK_LEN) return fail("bad-length");
    const view = viewOf(body);
    if (view.getUint8(1) !== 0) return fail("bad-field");
    return ok({
      kind,
      nextSeq: view.getUint32(2, true),
      sack: view.getUint32(6, true),
      echoSeq: view.getUint32(10, true),
    });
  }
  if (kind !== InputMessageKind.Events) return fail("unknown-type");
  if (body.length < EVENTS_HEADER_LEN + 2) return fail("too-short");
  const count = body[1] as number;
  if (count === 0) return fail("bad-field");
  // Each event is at least 2 bytes: refuse an impossible count before decoding anything.
  if (body.length < EVENTS_HEADER_LEN + 2 * count) return fail("too-short");
  const firstSeq = viewOf(body).getUint32(2, true);
  const events: InputEvent[] = [];
  let offset = EVENTS_HEADER_LEN;
  for (let i = 0; i < count; i++) {
    const read = readInputEvent(body, offset);
    if (!read.ok) return read;
    events.push(read.value.event);
    offset = read.value.end;
  }
  if (offset !== body.length) return fail("bad-length");
  return ok({ kind, firstSeq, events });
}

/** Builds an ACK as a complete DATA plaintext (input channel byte included). */
export function encodeAck(nextSeq: number, sack: number, echoSeq: number): Uint8Array {
  const out = allocChannelPayload(Channel.Input, ACK_LEN);
  const view = new DataView(out.buffer, out.byteOffset + CHANNEL_HEADER_LEN, ACK_LEN);
  view.setUint8(0, InputMessageKind.Ack);
  view.setUint32(2, nextSeq >>> 0, true);
  view.setUint32(6, sack >>> 0, true);
  view.setUint32(10, echoSeq >>> 0, true);
  return out;
}

/** Builds an EVENTS message as a complete DATA plaintext. Throws {@link EncodeError} if it cannot fit. */
export function encodeEvents(firstSeq: number, events: readonly InputEvent[]): Uint8Array {
  if (events.length < 1 || events.length > MAX_EVENTS_PER_MESSAGE) throw new EncodeError("1..255 events");
  let length = EVENTS_HEADER_LEN;
  for (const event of events) length += inputEventLength(event);
  const out = allocChannelPayload(Channel.Input, length);
  out[CHANNEL_HEADER_LEN] = InputMessageKind.Events;
  out[CHANNEL_HEADER_LEN + 1] = events.length;
  new DataView(out.buffer, out.byteOffset).setUint32(CHANNEL_HEADER_LEN + 2, firstSeq >>> 0, true);
  let offset = CHANNEL_HEADER_LEN + EVENTS_HEADER_LEN;
  for (const event of events) offset = writeInputEvent(out, offset, event);
  return out;
}

/** The unbounded sequence number nearest `reference` whose low 32 bits are `wire`. */
function extend(wire: number, reference: number): number {
  return reference + ((wire - (reference >>> 0)) | 0);
}

function checkWindow(window: number): number {
  if (!Number.isInteger(window) || window < SACK_BITS || window > MAX_INPUT_WINDOW) {
    throw new RangeError(`input window must be an integer in ${SACK_BITS}..${MAX_INPUT_WINDOW}`);
  }
  return window;
}

function checkSeq(seq: number): number {
  // Far below 2^53 so a long session never loses integer precision.
  if (!Number.isInteger(seq) || seq < 0 || seq > 2 ** 48) throw new RangeError("initialSeq must be 0..2^48");
  return seq;
}

export interface ReliableInputSenderOptions {
  /** Sequence number of the first event (both sides must agree; 0 unless testing wrap-around). */
  readonly initialSeq?: number;
  /** Events in flight beyond the oldest unacknowledged one; must equal the receiver's window. */
  readonly window?: number;
  /** Events held (in flight plus waiting); {@link ReliableInputSender.push} refuses more. */
  readonly maxQueued?: number;
  /** Plaintext bytes per datagram, channel byte included (at most MAX_DATA_PLAINTEXT). */
  readonly maxDatagramBytes?: number;
  /** Datagrams one poll may return, so a burst cannot monopolise a tick. */
  readonly maxDatagramsPerPoll?: number;
  /** Retransmission timeout before the first RTT sample, and its bounds (RFC 6298 shape, ms). */
  readonly initialRtoMs?: number;
  readonly minRtoMs?: number;
  readonly maxRtoMs?: number;
}

/** Why an ACK was not applied. `stale`: older than one already applied (reordering, harmless). */
export type AckRefusal = "stale" | "acks-unsent";

interface Pending {
  readonly event: InputEvent;
  readonly length: number;
  /** Caller's clock at the last send; -1 before the first. */
  sentAt: number;
  sends: number;
  sacked: boolean;
}

/**
 * The sending half. `push` events as they happen, `poll(now)` for datagrams to send, `onAck` for every
 * ACK decoded from the peer. Memory is bounded by `maxQueued` events.
 */
export class ReliableInputSender {
  readonly #window: number;
  readonly #maxQueued: number;
  readonly #maxBytes: number;
  readonly #maxDatagrams: number;
  readonly #minRto: number;
  readonly #maxRto: number;
  /** Oldest unacknowledged event first; queue[i] has sequence number #base + i. */
  #queue: Pending[] = [];
  #base = 0;
  /** One past the highest sequence number ever sent. */
  #sentEnd = 0;
  #highestSacked = -1;
  #srtt = -1;
  #rttvar = 0;
  #rto: number;
  #backoff = 1;
  #retransmissions = 0;

  constructor(options: ReliableInputSenderOptions = {}) {
    this.#window = checkWindow(options.window ?? DEFAULT_INPUT_WINDOW);
    this.#base = checkSeq(options.initialSeq ?? 0);
    this.#sentEnd = this.#base;
    this.#maxQueued = options.maxQueued ?? 4 * this.#window;
    this.#maxBytes = options.maxDatagramBytes ?? CHANNEL_HEADER_LEN + MAX_CHANNEL_BODY;
    this.#maxDatagrams = options.maxDatagramsPerPoll ?? 8;
    this.#minRto = options.minRtoMs ?? 20;
    this.#maxRto = options.maxRtoMs ?? 2000;
    this.#rto = options.initialRtoMs ?? 200;
    if (!(this.#maxQueued >= 1)) throw new RangeError("maxQueued must be positive");
    if (
      !(this.#maxBytes >= CHANNEL_HEADER_LEN + EVENTS_HEADER_LEN + MAX_INPUT_EVENT_LEN) ||
      this.#maxBytes > CHANNEL_HEADER_LEN + MAX_CHANNEL_BODY
    ) {
      throw new RangeError("maxDatagramBytes must fit one largest event and one DATA frame");
    }
    if (!(this.#maxDatagrams >= 1)) throw new RangeError("maxDatagramsPerPoll must be positive");
    if (!(this.#minRto > 0 && this.#minRto <= this.#rto && this.#rto <= this.#maxRto)) {
      throw new RangeError("need 0 < minRtoMs <= initialRtoMs <= maxRtoMs");
    }
  }

  /** Events not yet acknowledged (in flight or waiting). */
  get queued(): number {
    return this.#queue.length;
  }

  /** The current retransmission timeout (ms), including backoff. */
  get rto(): number {
    return Math.min(this.#rto * this.#backoff, this.#maxRto);
  }

  /** Smoothed round-trip time (ms), or undefined before the first sample. */
  get srtt(): number | undefined {
    return this.#srtt < 0 ? undefined : this.#srtt;
  }

  /** Events sent more than once so far. */
  get retransmissions(): number {
    return this.#retransmissions;
  }

  /**
   * Queues an event. Returns false, queueing nothing, when `maxQueued` events are already held (the caller
   * may coalesce mouse motion and retry). Throws {@link EncodeError} for an event that cannot be encoded.
   */
  push(event: InputEvent): boolean {
    const length = inputEventLength(event);
    if (this.#queue.length >= this.#maxQueued) return false;
    this.#queue.push({ event, length, sentAt: -1, sends: 0, sacked: false });
    return true;
  }

  /**
   * Datagrams to send now (complete DATA plaintexts, input channel). An event is sent when it was never
   * sent, when its retransmission timeout expired, or when the peer acknowledged a later event and a
   * round trip passed (RACK-style fast retransmit). Only the first `window` queued events are eligible.
   */
  poll(now: number): Uint8Array[] {
    const limit = Math.min(this.#queue.length, this.#window);
    const rto = this.rto;
    // Reordering gets a quarter of a round trip before a hole counts as lost.
    const fastDelay = this.#srtt < 0 ? rto : Math.max(this.#srtt * 1.25, this.#minRto / 2);
    const out: Uint8Array[] = [];
    let timedOut = false;
    let run: InputEvent[] = [];
    let runStart = 0;
    let runBytes = CHANNEL_HEADER_LEN + EVENTS_HEADER_LEN;
    const flush = () => {
      if (run.length > 0) out.push(encodeEvents(runStart, run));
      run = [];
      runBytes = CHANNEL_HEADER_LEN + EVENTS_HEADER_LEN;
    };
    for (let i = 0; i < limit && out.length < this.#maxDatagrams; i++) {
      const pending = this.#queue[i] as Pending;
      const seq = this.#base + i;
      let due = pending.sentAt < 0;
      if (!due && !pending.sacked) {
        const age = now - pending.sentAt;
        if (age >= rto) {
          due = true;
          timedOut = true;
        } else if (seq < this.#highestSacked && age >= fastDelay) {
          due = true;
        }
      }
      if (!due) {
        flush();
        continue;
      }
      if (run.length === MAX_EVENTS_PER_MESSAGE || runBytes + pending.length > this.#maxBytes) {
        flush();
        if (out.length >= this.#maxDatagrams) break;
      }
      if (run.length === 0) runStart = seq;
      run.push(pending.event);
      runBytes += pending.length;
      if (pending.sends > 0) this.#retransmissions++;
      pending.sentAt = now;
      pending.sends++;
      if (seq >= this.#sentEnd) this.#sentEnd = seq + 1;
    }
    flush();
    // RFC 6298 §5.5: back off after a timeout, until new data is acknowledged.
    if (timedOut) this.#backoff = Math.min(this.#backoff * 2, 64);
    return out;
  }

  /**
   * Applies an ACK. Returns undefined when applied, `stale` for an ACK older than the state (ignored), or
   * `acks-unsent` when it claims events never sent (a broken or hostile peer; ignored entirely).
   */
  onAck(ack: AckMessage, now: number): AckRefusal | undefined {
    const next = extend(ack.nextSeq, this.#base);
    if (next < this.#base) return "stale";
    if (next > this.#sentEnd) return "acks-unsent";
    const sack = ack.sack >>> 0;
    // The highest selectively acknowledged sequence must have been sent, too.
    if (sack !== 0 && next + 1 + (31 - Math.clz32(sack)) >= this.#sentEnd) return "acks-unsent";
    // The round trip is measured on the message this ACK answers, not on everything it covers: a hole
    // filled late would make events buffered behind it look slow. Karn's rule: only events sent once.
    const echoed = this.#queue[extend(ack.echoSeq, this.#base) - this.#base];
    const sample = echoed !== undefined && echoed.sends === 1 ? echoed.sentAt : -1;
    const advanced = next - this.#base;
    if (advanced > 0) {
      this.#queue = this.#queue.slice(advanced);
      this.#base = next;
      this.#backoff = 1;
    }
    for (let bit = 0; bit < SACK_BITS; bit++) {
      if ((sack & (1 << bit)) === 0) continue;
      const seq = next + 1 + bit;
      const pending = this.#queue[seq - this.#base];
      if (pending === undefined || pending.sacked) continue;
      pending.sacked = true;
      if (seq > this.#highestSacked) this.#highestSacked = seq;
    }
    if (sample >= 0 && now >= sample) this.#sampleRtt(now - sample);
    return undefined;
  }

  #sampleRtt(rtt: number): void {
    // RFC 6298 §2 with alpha = 1/8, beta = 1/4, G = 1 ms.
    if (this.#srtt < 0) {
      this.#srtt = rtt;
      this.#rttvar = rtt / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rtt);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rtt;
    }
    this.#rto = Math.min(Math.max(this.#srtt + Math.max(1, 4 * this.#rttvar), this.#minRto), this.#maxRto);
  }
}

export interface ReliableInputReceiverOptions {
  /** Sequence number of the first event (both sides must agree). */
  readonly initialSeq?: number;
  /** Reorder buffer size in events; must equal the sender's window. */
  readonly window?: number;
}

/** Why an EVENTS message was refused (nothing delivered, no ACK). Doubles as a drop-counter label. */
export type EventsRefusal = "out-of-window";

export type ReceiveResult =
  | {
      readonly ok: true;
      /** Newly deliverable events, in order, each exactly once. */
      readonly events: readonly InputEvent[];
      /** The ACK to send back (a complete DATA plaintext). */
      readonly ack: Uint8Array;
    }
  | { readonly ok: false; readonly error: EventsRefusal };

/**
 * The receiving half. Feed it every decoded EVENTS message; send back the ACK it returns. Holds at most
 * `window - 1` out-of-order events and refuses any message reaching outside [next - window, next + window),
 * which an honest sender never produces (it never has more than `window` events in flight).
 */
export class ReliableInputReceiver {
  readonly #window: number;
  readonly #slots: (InputEvent | undefined)[];
  #next = 0;
  #buffered = 0;
  #delivered = 0;
  #duplicates = 0;
  #refused = 0;

  constructor(options: ReliableInputReceiverOptions = {}) {
    this.#window = checkWindow(options.window ?? DEFAULT_INPUT_WINDOW);
    this.#next = checkSeq(options.initialSeq ?? 0);
    this.#slots = new Array<InputEvent | undefined>(this.#window).fill(undefined);
  }

  /** Counters for metrics: events delivered, duplicate events dropped, messages refused. */
  get stats(): { readonly delivered: number; readonly duplicates: number; readonly refused: number } {
    return { delivered: this.#delivered, duplicates: this.#duplicates, refused: this.#refused };
  }

  /** Out-of-order events held, waiting for a gap to fill (always below the window). */
  get buffered(): number {
    return this.#buffered;
  }

  /** Processes one EVENTS message. */
  receive(message: EventsMessage): ReceiveResult {
    const first = extend(message.firstSeq, this.#next);
    const count = message.events.length;
    if (first < this.#next - this.#window || first + count > this.#next + this.#window) {
      this.#refused++;
      return { ok: false, error: "out-of-window" };
    }
    for (let i = 0; i < count; i++) {
      const seq = first + i;
      const slot = seq % this.#window;
      if (seq < this.#next || this.#slots[slot] !== undefined) {
        this.#duplicates++;
        continue;
      }
      this.#slots[slot] = message.events[i];
      this.#buffered++;
    }
    const events: InputEvent[] = [];
    for (;;) {
      const slot = this.#next % this.#window;
      const event = this.#slots[slot];
      if (event === undefined) break;
      events.push(event);
      this.#slots[slot] = undefined;
      this.#buffered--;
      this.#next++;
    }
    this.#delivered += events.length;
    return { ok: true, events, ack: this.#ack(message.firstSeq) };
  }

  /** The current ACK (also useful as a keepalive answer); its echo names the next expected event. */
  ackNow(): Uint8Array {
    return this.#ack(this.#next);
  }

  #ack(echoSeq: number): Uint8Array {
    let sack = 0;
    for (let bit = 0; bit < SACK_BITS; bit++) {
      if (this.#slots[(this.#next + 1 + bit) % this.#window] !== undefined) sack |= 1 << bit;
    }
    return encodeAck(this.#next, sack, echoSeq);
  }
}
