import { allocChannelPayload, CHANNEL_HEADER_LEN, Channel } from "../../protocol/channels/channel.ts";
import type { InputEvent } from "../../protocol/channels/input-events.ts";
import {
  decodeInputMessage,
  InputMessageKind,
  ReliableInputSender,
} from "../../protocol/channels/reliable-input.ts";
import { FeedbackRecorder } from "../../protocol/media/congestion-feedback.ts";
import { encodeKeyframeRequest } from "../../protocol/media/keyframe-request.ts";
import { readU32 } from "../../protocol/media/little-endian.ts";
import { encodeNack, FEEDBACK_SEND_COPIES, type Nack } from "../../protocol/media/nack.ts";
import {
  type CompletedFrame,
  FRAME_DROP_REASONS,
  type KeyframeRequestEvent,
  Reassembler,
  type ReassemblerOptions,
  type ReassemblyDropReason,
} from "../../protocol/media/reassembler.ts";
import type { EncodedUnit } from "../media/video-source.ts";
import type { SessionLink } from "./host-session.ts";
import { extendSeq, MEASURED_SEQ_LEN } from "./session-wire.ts";

/** What the client knows about a frame it hands to the sink. */
export interface ReceivedFrameInfo {
  readonly frameId: number;
  /** Session clock when the frame completed (its last needed fragment arrived). */
  readonly completedAt: number;
}

/** Options of {@link ClientSession}. Times are milliseconds. */
export interface ClientSessionOptions {
  /** An established client-side link. The session subscribes to its `data` events until closed. */
  readonly link: SessionLink;
  /** Complete, decodable units in stream order (the viewer's `sendFrame` or a `FileSink`). Must not throw. */
  readonly onFrame: (unit: EncodedUnit, info: ReceivedFrameInfo) => void;
  readonly reassembler?: ReassemblerOptions;
  /** How often congestion reports go out; default 50. */
  readonly feedbackIntervalMs?: number;
  /** How often timers (NACK rounds, input retransmission, feedback) are checked; default 5. */
  readonly tickMs?: number;
  /** Monotonic milliseconds; default `performance.now()`. */
  readonly clock?: () => number;
  /**
   * The capture clock of the host's units (u32 ms) when it is comparable with this side's, e.g. both in one
   * process; enables `stats.delays`. Omit when host and client clocks are unrelated.
   */
  readonly captureClock?: () => number;
}

/** Counters of a client session. */
export interface ClientSessionStats {
  framesComplete: number;
  /** Frames given up or withheld (frame-level reassembler drops). */
  framesDropped: number;
  /** Every reassembler drop by reason (fragment and frame level). */
  drops: Partial<Record<ReassemblyDropReason, number>>;
  datagramsReceived: number;
  nacksSent: number;
  keyframeRequestsSent: number;
  feedbackReportsSent: number;
  inputEventsSent: number;
  /** Channel bodies the session could not decode. */
  malformed: number;
  /**
   * Per-frame delay (completion − capture timestamp), newest last, at most 8192; only with `captureClock`.
   * Without the host's send time on the wire this includes the encoder-to-send wait and pacing.
   */
  delays: number[];
}

const MAX_DELAY_SAMPLES = 8192;

/**
 * The client half of a media session over an established peer link: reassembles video (FEC, NACKs and keyframe
 * requests, each sent {@link FEEDBACK_SEND_COPIES} times), reports arrivals for congestion control every
 * `feedbackIntervalMs`, and sends input reliably and ahead of everything else each tick.
 */
export class ClientSession {
  readonly stats: ClientSessionStats = {
    framesComplete: 0,
    framesDropped: 0,
    drops: {},
    datagramsReceived: 0,
    nacksSent: 0,
    keyframeRequestsSent: 0,
    feedbackReportsSent: 0,
    inputEventsSent: 0,
    malformed: 0,
    delays: [],
  };
  readonly #link: SessionLink;
  readonly #onFrame: (unit: EncodedUnit, info: ReceivedFrameInfo) => void;
  readonly #clock: () => number;
  readonly #captureClock: (() => number) | undefined;
  readonly #reassembler: Reassembler;
  readonly #recorder = new FeedbackRecorder();
  readonly #input = new ReliableInputSender();
  readonly #feedbackInterval: number;
  readonly #timer: NodeJS.Timeout;
  #highestSeq = -1;
  #lastFeedbackAt: number;
  #now = 0;
  #closed = false;

  constructor(options: ClientSessionOptions) {
    this.#link = options.link;
    this.#onFrame = options.onFrame;
    this.#clock = options.clock ?? (() => performance.now());
    this.#captureClock = options.captureClock;
    this.#feedbackInterval = options.feedbackIntervalMs ?? 50;
    this.#reassembler = new Reassembler(
      {
        frame: (frame) => this.#deliver(frame),
        nack: (nack) => this.#sendNack(nack),
        keyframeRequest: (request) => this.#sendKeyframeRequest(request),
        drop: (reason) => {
          this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
          if (FRAME_DROP_REASONS.has(reason)) this.stats.framesDropped++;
        },
      },
      options.reassembler,
    );
    this.#lastFeedbackAt = this.#clock();
    this.#link.on("data", this.#onData);
    this.#timer = setInterval(() => this.#tick(), options.tickMs ?? 5);
  }

  /**
   * Queues one input event and sends it at once. Returns false (nothing queued) when the reliable sender
   * already holds its maximum of unacknowledged events. Throws EncodeError for an event that cannot be encoded.
   */
  sendInput(event: InputEvent): boolean {
    if (this.#closed || !this.#input.push(event)) return false;
    this.stats.inputEventsSent++;
    this.#flushInput(this.#clock());
    return true;
  }

  /** Input events not yet acknowledged by the host. */
  get inputQueued(): number {
    return this.#input.queued;
  }

  /** Stops timers and unsubscribes from the link (which stays open). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#link.off("data", this.#onData);
  }

  #tick(): void {
    const now = this.#clock();
    this.#now = now;
    // Input first: a key press must never wait behind NACKs or reports.
    this.#flushInput(now);
    this.#reassembler.poll(now);
    if (now - this.#lastFeedbackAt >= this.#feedbackInterval) {
      this.#lastFeedbackAt = now;
      for (const report of this.#recorder.build()) {
        if (this.#link.send(report)) this.stats.feedbackReportsSent++;
      }
    }
  }

  #flushInput(now: number): void {
    for (const datagram of this.#input.poll(now)) this.#link.send(datagram);
  }

  readonly #onData = (channel: Channel, body: Uint8Array): void => {
    if (this.#closed) return;
    const now = this.#clock();
    this.#now = now;
    if (channel === Channel.Video) {
      if (body.length <= MEASURED_SEQ_LEN) {
        this.stats.malformed++;
        return;
      }
      this.stats.datagramsReceived++;
      const seq = extendSeq(readU32(body, 0), Math.max(this.#highestSeq, 0));
      if (seq > this.#highestSeq) this.#highestSeq = seq;
      this.#recorder.onPacket(seq, now);
      this.#reassembler.receive(body.subarray(MEASURED_SEQ_LEN), now);
      return;
    }
    if (channel === Channel.Input) {
      const decoded = decodeInputMessage(body);
      if (!decoded.ok || decoded.value.kind !== InputMessageKind.Ack) {
        this.stats.malformed++;
        return;
      }
      this.#input.onAck(decoded.value, now);
      // An ACK may open the window or reveal a hole worth resending now.
      this.#flushInput(now);
      return;
    }
    this.stats.malformed++;
  };

  #deliver(frame: CompletedFrame): void {
    this.stats.framesComplete++;
    const capture = this.#captureClock;
    if (capture !== undefined) {
      const delay = (capture() - frame.timestampMs + 0x1_0000_0000) % 0x1_0000_0000;
      const delays = this.stats.delays;
      if (delays.length >= MAX_DELAY_SAMPLES) delays.shift();
      delays.push(delay);
    }
    this.#onFrame(
      { data: frame.bytes, keyframe: frame.keyframe, timestampMs: frame.timestampMs },
      { frameId: frame.frameId, completedAt: this.#now },
    );
  }

  #sendNack(nack: Nack): void {
    this.#sendVideoFeedback(encodeNack(nack));
    this.stats.nacksSent++;
  }

  #sendKeyframeRequest(request: KeyframeRequestEvent): void {
    this.#sendVideoFeedback(encodeKeyframeRequest({ givenUpThrough: request.givenUpThrough }));
    this.stats.keyframeRequestsSent++;
  }

  #sendVideoFeedback(message: Uint8Array): void {
    const plaintext = allocChannelPayload(Channel.Video, message.length);
    plaintext.set(message, CHANNEL_HEADER_LEN);
    // Tiny and decisive: a lost copy costs a frame and everything after it until a keyframe.
    for (let copy = 0; copy < FEEDBACK_SEND_COPIES; copy++) this.#link.send(plaintext);
  }
}
