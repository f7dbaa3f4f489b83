import { CHANNEL_HEADER_LEN, Channel } from "../../protocol/channels/channel.ts";
import type { InputEvent } from "../../protocol/channels/input-events.ts";
import {
  decodeInputMessage,
  InputMessageKind,
  ReliableInputReceiver,
} from "../../protocol/channels/reliable-input.ts";
import { CongestionController, type CongestionOptions } from "../../protocol/media/congestion.ts";
import { decodeCongestionReport } from "../../protocol/media/congestion-feedback.ts";
import { type FragmentedFrame, VideoFragmenter } from "../../protocol/media/fragmenter.ts";
import { frameIdBefore, nextFrameId } from "../../protocol/media/frame-id.ts";
import { decodeKeyframeRequest } from "../../protocol/media/keyframe-request.ts";
import { readU32, writeU32 } from "../../protocol/media/little-endian.ts";
import { decodeNack } from "../../protocol/media/nack.ts";
import { RetransmitBuffer } from "../../protocol/media/retransmit-buffer.ts";
import {
  VIDEO_FORMAT_VERSION,
  VIDEO_FRAGMENT_MAX_BYTES,
  VideoFragmentFlag,
  VideoMessageKind,
} from "../../protocol/media/video-fragment.ts";
import type { EncodedUnit, VideoSource } from "../media/video-source.ts";
import type { PeerLink } from "../peer-link/peer-link.ts";
import { DATA_OVERHEAD, MEASURED_SEQ_LEN, SESSION_FRAGMENT_BYTES } from "./session-wire.ts";

/** The part of a {@link PeerLink} a session uses (tests may pass a fake). */
export interface SessionLink {
  send(plaintext: Uint8Array): boolean;
  on(event: "data", listener: (channel: Channel, body: Uint8Array) => void): unknown;
  off(event: "data", listener: (channel: Channel, body: Uint8Array) => void): unknown;
}

/** Options of {@link HostSession}. Times are milliseconds. */
export interface HostSessionOptions {
  /** An established host-side link. The session subscribes to its `data` events until closed. */
  readonly link: SessionLink;
  readonly source: VideoSource;
  /** Each input event the client sent, exactly once, in the client's order. Must not throw. */
  readonly onInput: (event: InputEvent) => void;
  /** FEC group size G (0: no parity, else 2..32); default 8. */
  readonly groupSize?: number;
  readonly congestion?: CongestionOptions;
  /** Least time between two `source.setBitrate` calls (an ffmpeg source restarts on each); default 2000. */
  readonly bitrateIntervalMs?: number;
  /**
   * Video bytes the pacer may hold; a non-keyframe arriving beyond this is dropped whole (its frame id is
   * still used, so the client sees the gap) and a keyframe is asked for. Default 4 MiB.
   */
  readonly maxQueuedBytes?: number;
  /** Observer of every frame handed to the pacer (tests and benchmarks compare what arrives). */
  readonly onFrameQueued?: (frameId: number, unit: EncodedUnit, at: number) => void;
  /** Observer: the frame's last data fragment left the pacer (first send, not a resend). */
  readonly onFrameSent?: (frameId: number, at: number) => void;
  /** Monotonic milliseconds; default `performance.now()`. */
  readonly clock?: () => number;
}

/** Counters of a host session. */
export interface HostSessionStats {
  framesSent: number;
  /** Frames dropped before sending because the pacer was full. */
  framesDropped: number;
  datagramsSent: number;
  fragmentsResent: number;
  nacksReceived: number;
  keyframeRequestsReceived: number;
  /** Keyframe requests passed on to the source (the rest were answered by a keyframe already sent). */
  keyframesRequested: number;
  bitrateChanges: number;
  inputEvents: number;
  /** Channel bodies the session could not decode (by nothing more than a count: never logged). */
  malformed: number;
}

/** Fills dequeued slots so the queue arrays do not keep sent frames' buffers alive. */
const EMPTY = new Uint8Array(0);
/** Byte 0 of a DATA fragment, and the flag its last fragment carries (PROTOCOL.md "Video channel"). */
const LAST_DATA_KIND = (VIDEO_FORMAT_VERSION << 4) | VideoMessageKind.Data;
const LAST_FLAG = VideoFragmentFlag.Last;
/** The slowest the pacer sends while anything waits: one full datagram per 5 ms (≈ 1.9 Mbit/s). */
const MIN_PACING_BYTES_PER_MS = 1200 / 5;
/** The pacer drains whatever it holds within this long, whatever the controller says. */
const MAX_QUEUE_MS = 40;
/** Extra pacing burst: the bucket holds at least this many milliseconds of the pacing rate. */
const BURST_MS = 5;
/** A NACK identical to one seen this recently is the client's second copy (FEEDBACK_SEND_COPIES). */
const NACK_DEDUP_MS = 30;
/** A keyframe request within this long after one passed to the source is the same request repeated. */
const KEYFRAME_HOLD_MS = 100;
/** Bitrate changes smaller than this fraction are not worth an encoder restart. */
const BITRATE_HYSTERESIS = 0.1;

/**
 * The host half of a media session over an established peer link: fragments each access unit with parity FEC,
 * paces video at the congestion controller's pacing rate (a token bucket on a timer; input ACKs are sent at
 * once and never wait behind video), answers NACKs from a retransmit buffer ahead of new video, answers keyframe
 * requests, applies the target bitrate to the source at most every `bitrateIntervalMs`, and delivers the
 * client's input events in order.
 */
export class HostSession {
  readonly stats: HostSessionStats = {
    framesSent: 0,
    framesDropped: 0,
    datagramsSent: 0,
    fragmentsResent: 0,
    nacksReceived: 0,
    keyframeRequestsReceived: 0,
    keyframesRequested: 0,
    bitrateChanges: 0,
    inputEvents: 0,
    malformed: 0,
  };
  readonly congestion: CongestionController;
  readonly #link: SessionLink;
  readonly #source: VideoSource;
  readonly #onInput: (event: InputEvent) => void;
  readonly #onFrameQueued: ((frameId: number, unit: EncodedUnit, at: number) => void) | undefined;
  readonly #onFrameSent: ((frameId: number, at: number) => void) | undefined;
  readonly #clock: () => number;
  readonly #fragmenter: VideoFragmenter;
  readonly #retransmit = new RetransmitBuffer();
  readonly #input = new ReliableInputReceiver();
  readonly #bitrateInterval: number;
  readonly #maxQueued: number;
  /** One plaintext buffer for every video datagram: the link seals it synchronously into a new datagram. */
  readonly #plaintext = new Uint8Array(CHANNEL_HEADER_LEN + MEASURED_SEQ_LEN + VIDEO_FRAGMENT_MAX_BYTES);
  /** Resends go first; both queues are arrays with a moving head so dequeuing is O(1). */
  #urgent: Uint8Array[] = [];
  #urgentHead = 0;
  #queue: Uint8Array[] = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #tokens = 0;
  #lastRefill: number;
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;
  #frameId = 0;
  /** The id of the newest keyframe sent, or undefined before the first. */
  #lastKeyframeId: number | undefined;
  #keyframeAskedAt = Number.NEGATIVE_INFINITY;
  #lastBitrateAt: number;
  #appliedKbps: number;
  readonly #recentNacks = new Map<string, number>();
  #closed = false;

  constructor(options: HostSessionOptions) {
    this.#link = options.link;
    this.#source = options.source;
    this.#onInput = options.onInput;
    this.#onFrameQueued = options.onFrameQueued;
    this.#onFrameSent = options.onFrameSent;
    this.#clock = options.clock ?? (() => performance.now());
    this.#fragmenter = new VideoFragmenter({
      groupSize: options.groupSize ?? 8,
      fragmentBytes: SESSION_FRAGMENT_BYTES,
    });
    this.congestion = new CongestionController(options.congestion);
    this.#bitrateInterval = options.bitrateIntervalMs ?? 2000;
    this.#maxQueued = options.maxQueuedBytes ?? 4 * 1024 * 1024;
    this.#plaintext[0] = Channel.Video;
    const now = this.#clock();
    this.#lastRefill = now;
    // The first change waits a full interval: restarting the encoder right after it started buys nothing.
    this.#lastBitrateAt = now;
    this.#appliedKbps = this.#source.bitrateKbps;
    this.#link.on("data", this.#onData);
    this.#source.start(this.#onUnit);
  }

  /** Video bytes waiting in the pacer. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Stops the source and the pacer and unsubscribes from the link (which stays open). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#link.off("data", this.#onData);
    await this.#source.stop();
  }

  readonly #onUnit = (unit: EncodedUnit): void => {
    if (this.#closed) return;
    const frameId = this.#frameId;
    this.#frameId = nextFrameId(frameId);
    const now = this.#clock();
    if (!unit.keyframe && this.#queuedBytes > this.#maxQueued) {
      // The id stays used: the client sees the gap, gives the frame up and waits for the keyframe asked here.
      this.stats.framesDropped++;
      this.#askKeyframe(now);
      return;
    }
    let frame: FragmentedFrame;
    try {
      frame = this.#fragmenter.fragment(unit.data, {
        frameId,
        keyframe: unit.keyframe,
        timestampMs: unit.timestampMs,
      });
    } catch {
      // Empty or oversized: the source broke its contract; the gap makes the client ask for a keyframe.
      this.stats.framesDropped++;
      return;
    }
    if (unit.keyframe) this.#lastKeyframeId = frameId;
    this.#retransmit.add(frame);
    for (const payload of frame.payloads) {
      this.#queue.push(payload);
      this.#queuedBytes += payload.length;
    }
    this.stats.framesSent++;
    this.#onFrameQueued?.(frameId, unit, now);
    this.#drain();
  };

  readonly #onData = (channel: Channel, body: Uint8Array): void => {
    if (this.#closed) return;
    if (channel === Channel.Input) this.#onInputBody(body);
    else if (channel === Channel.Video) this.#onVideoBody(body);
    else if (channel === Channel.Feedback) this.#onFeedback(body);
  };

  #onInputBody(body: Uint8Array): void {
    const decoded = decodeInputMessage(body);
    if (!decoded.ok || decoded.value.kind !== InputMessageKind.Events) {
      this.stats.malformed++;
      return;
    }
    const result = this.#input.receive(decoded.value);
    if (!result.ok) return;
    // The ACK goes out at once, ahead of any queued video, so the client's RTT samples stay honest.
    this.#link.send(result.ack);
    for (const event of result.events) {
      this.stats.inputEvents++;
      this.#onInput(event);
    }
  }

  #onVideoBody(body: Uint8Array): void {
    const kind = (body[0] ?? 0) & 0x0f;
    const now = this.#clock();
    if (kind === VideoMessageKind.Nack) {
      const decoded = decodeNack(body);
      if (!decoded.ok) {
        this.stats.malformed++;
        return;
      }
      this.stats.nacksReceived++;
      // NACKs are rare (a few per lost fragment): a string key per NACK is cheaper than getting dedup wrong.
      const key = Buffer.from(body.buffer, body.byteOffset, body.length).toString("latin1");
      const seen = this.#recentNacks.get(key);
      if (seen !== undefined && now - seen < NACK_DEDUP_MS) return;
      this.#recentNacks.set(key, now);
      if (this.#recentNacks.size > 256) {
        for (const [k, at] of this.#recentNacks) if (now - at >= NACK_DEDUP_MS) this.#recentNacks.delete(k);
      }
      const resend = this.#retransmit.answer(decoded.value);
      for (const payload of resend) this.#urgent.push(payload);
      this.stats.fragmentsResent += resend.length;
      if (resend.length > 0) this.#drain();
      return;
    }
    if (kind === VideoMessageKind.KeyframeRequest) {
      const decoded = decodeKeyframeRequest(body);
      if (!decoded.ok) {
        this.stats.malformed++;
        return;
      }
      this.stats.keyframeRequestsReceived++;
      const last = this.#lastKeyframeId;
      // A keyframe sent after the frame given up already answers the request (it is in flight).
      if (last !== undefined && frameIdBefore(decoded.value.givenUpThrough, last)) return;
      this.#askKeyframe(now);
      return;
    }
    this.stats.malformed++;
  }

  #askKeyframe(now: number): void {
    if (now - this.#keyframeAskedAt < KEYFRAME_HOLD_MS) return;
    this.#keyframeAskedAt = now;
    this.stats.keyframesRequested++;
    this.#source.requestKeyframe();
  }

  #onFeedback(body: Uint8Array): void {
    const decoded = decodeCongestionReport(body);
    if (!decoded.ok) {
      this.stats.malformed++;
      return;
    }
    const now = this.#clock();
    this.congestion.onFeedback(decoded.value, now);
    if (now - this.#lastBitrateAt < this.#bitrateInterval) return;
    const kbps = Math.max(1, Math.round(this.congestion.targetBitrate / 1000));
    if (Math.abs(kbps - this.#appliedKbps) <= this.#appliedKbps * BITRATE_HYSTERESIS) return;
    this.#lastBitrateAt = now;
    this.#appliedKbps = kbps;
    this.stats.bitrateChanges++;
    this.#source.setBitrate(kbps);
  }

  /** Sends what the token bucket allows, resends first; re-arms the timer while anything is left. */
  #drain(): void {
    if (this.#closed) return;
    const now = this.#clock();
    // Never spread a frame so thin that the client's reorder grace (10 ms without a fragment) fires mid-frame,
    // and never let the queue hold more than MAX_QUEUE_MS: both would turn pacing into NACKs and lost frames.
    const bytesPerMs = Math.max(
      this.congestion.pacingRate / 8000,
      MIN_PACING_BYTES_PER_MS,
      (this.#queuedBytes + this.#urgentBytes()) / MAX_QUEUE_MS,
    );
    const burst = Math.max(2 * this.#plaintext.length, bytesPerMs * BURST_MS);
    this.#tokens = Math.min(burst, this.#tokens + (now - this.#lastRefill) * bytesPerMs);
    this.#lastRefill = now;
    while (this.#tokens > 0) {
      let message: Uint8Array | undefined;
      if (this.#urgentHead < this.#urgent.length) {
        message = this.#urgent[this.#urgentHead];
        this.#urgent[this.#urgentHead++] = EMPTY;
      } else if (this.#queueHead < this.#queue.length) {
        message = this.#queue[this.#queueHead];
        this.#queue[this.#queueHead++] = EMPTY;
        if (message !== undefined) {
          this.#queuedBytes -= message.length;
          // The header says whether this is the frame's last data fragment: no per-frame bookkeeping needed.
          if (
            this.#onFrameSent !== undefined &&
            message[0] === LAST_DATA_KIND &&
            (message[1] ?? 0) & LAST_FLAG
          ) {
            this.#onFrameSent(readU32(message, 2), now);
          }
        }
      } else break;
      if (message === undefined) continue;
      this.#tokens -= this.#sendVideo(message, now);
    }
    this.#compact();
    const pending = this.#urgentHead < this.#urgent.length || this.#queueHead < this.#queue.length;
    if (pending && this.#timer === undefined) {
      const wait = Math.max(1, Math.ceil(-this.#tokens / bytesPerMs));
      this.#timer = setTimeout(this.#onTimer, wait);
    }
  }

  /** Resend bytes waiting (few: NACK answers), for the drain-time bound. */
  #urgentBytes(): number {
    let bytes = 0;
    for (let i = this.#urgentHead; i < this.#urgent.length; i++) bytes += this.#urgent[i]?.length ?? 0;
    return bytes;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#drain();
  };

  /** Seals one video message behind its measurement sequence; returns the bytes it costs on the wire. */
  #sendVideo(message: Uint8Array, now: number): number {
    const plaintext = this.#plaintext;
    const seq = this.#seq;
    writeU32(plaintext, CHANNEL_HEADER_LEN, seq >>> 0);
    plaintext.set(message, CHANNEL_HEADER_LEN + MEASURED_SEQ_LEN);
    const length = CHANNEL_HEADER_LEN + MEASURED_SEQ_LEN + message.length;
    if (!this.#link.send(plaintext.subarray(0, length))) return length;
    this.#seq = seq + 1;
    this.stats.datagramsSent++;
    this.congestion.onPacketSent(seq, length + DATA_OVERHEAD, now);
    return length + DATA_OVERHEAD;
  }

  #compact(): void {
    if (this.#urgentHead >= this.#urgent.length) {
      this.#urgent.length = 0;
      this.#urgentHead = 0;
    }
    if (this.#queueHead >= this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    } else if (this.#queueHead > 4096) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }
}
