import type { DecodeErrorCode } from "../wire/decode.ts";
import { addFrameId, frameIdBefore, frameIdDistance, nextFrameId } from "./frame-id.ts";
import { MAX_NACK_INDEXES, type Nack } from "./nack.ts";
import {
  decodeVideoFragmentInto,
  emptyVideoFragmentFields,
  fecGroupCount,
  fecGroupMembers,
  VIDEO_FRAGMENT_HEADER_LEN,
  VIDEO_FRAGMENT_MAX_PAYLOAD,
  type VideoFragmentFields,
  VideoMessageKind,
} from "./video-fragment.ts";
import { roundUp4, xorInto } from "./xor.ts";

/** Bounds and timers of a reassembler. Checked once, when it is built. Times are milliseconds. */
export interface ReassemblerOptions {
  /** Frames held at once, complete or not (default 64: a second at 60 fps is far more than useful). */
  readonly maxFramesInFlight?: number;
  /** Bytes held at once: frame buffers, bookkeeping and stored parity (default 16 MiB). */
  readonly maxBufferedBytes?: number;
  /** A frame not complete this long after its first fragment is given up (default 300). */
  readonly maxFrameAgeMs?: number;
  /** A frame's missing fragments are asked for once it has received nothing for this long (default 10). */
  readonly reorderGraceMs?: number;
  /** Wait between NACK rounds for one frame, and after the last round before giving up (default 40 ≈ RTT). */
  readonly nackRetryMs?: number;
  /**
   * NACK rounds per frame (default 3; 0: no NACK, give a frame up once FEC cannot finish it). Three rounds 40 ms
   * apart end within 170 ms, well inside the frame age limit; at 10 % loss a third round saves most frames two
   * rounds lose (each lost frame costs every frame up to the next keyframe).
   */
  readonly maxNackRounds?: number;
  /** Repeat a keyframe request this often while still waiting for a keyframe (default 100). */
  readonly keyframeRequestIntervalMs?: number;
  /**
   * A fragment this many frame ids or more ahead of the next frame to deliver means the stream moved on
   * (a long outage): everything held is dropped and the receiver resynchronises on it (default 256).
   */
  readonly maxFrameIdGap?: number;
}

/** A frame handed to the decoder. `bytes` is owned by the receiver of the event (no copy was made). */
export interface CompletedFrame {
  readonly frameId: number;
  readonly keyframe: boolean;
  readonly timestampMs: number;
  readonly bytes: Uint8Array;
}

/**
 * Why a fragment or a frame was dropped; the names double as metric labels.
 * Fragment drops: `malformed` (decoder refused it), `stale` (frame already delivered or given up),
 * `duplicate`, `inconsistent` (fields disagree with the frame's first fragment), `awaiting-keyframe` (a
 * non-keyframe arrived while the decoder needs a keyframe and none is being assembled), `over-budget` (no
 * room within the bounds). Frame drops: `expired` (too old), `evicted` (pushed out by the bounds),
 * `unrecoverable` (NACK rounds exhausted), `corrupt` (parity recovery produced bytes that cannot be right),
 * `superseded` (a later keyframe completed first), `withheld` (complete, but its reference is missing),
 * `resync` (the stream jumped ahead by `maxFrameIdGap` or more).
 */
export type ReassemblyDropReason =
  | "malformed"
  | "stale"
  | "duplicate"
  | "inconsistent"
  | "awaiting-keyframe"
  | "over-budget"
  | "expired"
  | "evicted"
  | "unrecoverable"
  | "corrupt"
  | "superseded"
  | "withheld"
  | "resync";

/** The drop reasons that cost a whole frame (the others count fragments). */
export const FRAME_DROP_REASONS: ReadonlySet<ReassemblyDropReason> = new Set([
  "expired",
  "evicted",
  "unrecoverable",
  "corrupt",
  "superseded",
  "withheld",
  "resync",
]);

const DROP_REASONS: readonly ReassemblyDropReason[] = [
  "malformed",
  "stale",
  "duplicate",
  "inconsistent",
  "awaiting-keyframe",
  "over-budget",
  "expired",
  "evicted",
  "unrecoverable",
  "corrupt",
  "superseded",
  "withheld",
  "resync",
];

/** Ask the host for a keyframe (encode it with keyframe-request.ts). */
export interface KeyframeRequestEvent {
  /** The newest frame id given up so far. */
  readonly givenUpThrough: number;
  /** What made the receiver give up (the first reason since the last keyframe). */
  readonly reason: ReassemblyDropReason;
}

/** Where a reassembler's events go. Called synchronously from `receive` and `poll`. */
export interface ReassemblerSink {
  /** A complete, in-order, decodable frame. */
  frame(frame: CompletedFrame): void;
  /** Send this NACK to the host (encode it with nack.ts). */
  nack(nack: Nack): void;
  keyframeRequest(request: KeyframeRequestEvent): void;
  /** A fragment (frameId when decodable) or a whole frame was dropped. */
  drop?(reason: ReassemblyDropReason, frameId: number | undefined): void;
}

type FrameStatus = "assembling" | "complete" | "lost";

interface FrameState {
  readonly id: number;
  readonly keyframe: boolean;
  readonly timestampMs: number;
  readonly frameLength: number;
  readonly count: number;
  readonly groupSize: number;
  readonly fragmentSize: number;
  status: FrameStatus;
  /** roundUp4(frameLength) bytes; fragment i at i · fragmentSize. Released when lost. */
  buffer: Uint8Array | undefined;
  /** [0, count): 1 when data fragment i is held; [count, count + groups): data fragments held per group. */
  have: Uint8Array | undefined;
  /** Parity that arrived while two or more of its group were missing, per group; created on first need. */
  parity: (Uint8Array | undefined)[] | undefined;
  received: number;
  /** Bytes charged against maxBufferedBytes. */
  cost: number;
  readonly firstSeen: number;
  lastArrival: number;
  nackRounds: number;
  lastNackAt: number;
}

interface AbsentFrame {
  rounds: number;
  lastNackAt: number;
}

/** Charged per frame on top of its buffers: the state object, map entry and arrays. */
const FRAME_OVERHEAD = 256;

const DEFAULTS = {
  maxFramesInFlight: 64,
  maxBufferedBytes: 16 * 1024 * 1024,
  maxFrameAgeMs: 300,
  reorderGraceMs: 10,
  nackRetryMs: 40,
  maxNackRounds: 3,
  keyframeRequestIntervalMs: 100,
  maxFrameIdGap: 256,
} as const;

/** Counters for metrics and tests. */
export interface ReassemblerStats {
  framesDelivered: number;
  /** Data fragments rebuilt from parity. */
  fragmentsRecovered: number;
  /** Parity fragments that arrived after their whole group (the normal case without loss). */
  parityUnused: number;
  nacksSent: number;
  keyframeRequests: number;
  malformed: Record<DecodeErrorCode, number>;
  drops: Record<ReassemblyDropReason, number>;
}

/**
 * The client side of the video channel: reassembles frames from DATA and PARITY fragments that arrive in any
 * order, duplicated or not at all; rebuilds one missing data fragment per FEC group from parity; asks for the
 * rest by NACK; and hands complete frames to the decoder in frame-id order.
 *
 * The decoder rule (issue 5: never hand the decoder a corrupt frame): a non-keyframe may reference any
 * earlier frame, so once a frame is given up (expired, evicted, unrecoverable, corrupt), no non-keyframe
 * after it is delivered until a keyframe is: they are dropped as `withheld`, and a keyframe request goes out
 * (repeated every `keyframeRequestIntervalMs` while waiting). The same holds at the start: the first frame
 * delivered is a keyframe, and it waits out `reorderGraceMs` after the first fragment so that an earlier
 * frame it overtook can still become the head. A keyframe that has been complete for `reorderGraceMs` while
 * older frames are still incomplete supersedes them, since nothing after it can reference them.
 *
 * Loss handling, in order: parity rebuilds one missing data fragment per group as soon as the rest of the
 * group is there; once a frame has received nothing for `reorderGraceMs`, its missing data fragments are
 * NACKed (ids never seen at all, between frames that were, get a whole-frame NACK); after `maxNackRounds`
 * rounds `nackRetryMs` apart the frame is given up and a keyframe is requested at once, not when the frame
 * reaches the head, because the keyframe is a round trip away.
 *
 * Bounds: at most `maxFramesInFlight` frames and `maxBufferedBytes` bytes are held, and every allocation is
 * sized from header fields the decoder has already bounded (frame ≤ 4 MiB, ≤ 4096 fragments) and charged
 * against the budget before it is made. When a new frame does not fit, the oldest frame held is given up
 * (or the new one, if it is the oldest). Input arrays are never retained: what is kept is copied.
 *
 * Pure: time is the `now` passed in (milliseconds, non-decreasing). Call `poll(now)` every few milliseconds
 * (at most `reorderGraceMs` apart) to drive NACKs, give-ups and repeated keyframe requests.
 */
export class Reassembler {
  readonly #sink: ReassemblerSink;
  readonly #maxFrames: number;
  readonly #maxBytes: number;
  readonly #maxAge: number;
  readonly #grace: number;
  readonly #nackRetry: number;
  readonly #maxNackRounds: number;
  readonly #keyframeInterval: number;
  readonly #maxGap: number;

  /** Frames held by id; Map order is creation order, so the first entry was seen earliest. */
  readonly #frames = new Map<number, FrameState>();
  /** NACK state of ids between held frames that have not been seen at all. */
  readonly #absent = new Map<number, AbsentFrame>();
  #bytes = 0;
  #started = false;
  #startedAt = 0;
  #everDelivered = false;
  /** The next frame id to deliver; every held frame is at or after it. */
  #nextId = 0;
  /** Non-keyframes are withheld until a keyframe is delivered. */
  #needKeyframe = true;
  /** A keyframe request is outstanding (repeat it until a keyframe is delivered). */
  #keyframeWanted = false;
  #keyframeReason: ReassemblyDropReason = "expired";
  #givenUpThrough = 0;
  #lastKeyframeRequestAt = Number.NEGATIVE_INFINITY;
  /** Set when something may let the head move; checked at the end of `receive`. */
  #dirty = false;
  readonly #header: VideoFragmentFields = emptyVideoFragmentFields();
  /** Recovery scratch for parity that arrives when its group lacks exactly one fragment (no allocation). */
  readonly #scratch = new Uint8Array(roundUp4(VIDEO_FRAGMENT_MAX_PAYLOAD));

  readonly stats: ReassemblerStats = {
    framesDelivered: 0,
    fragmentsRecovered: 0,
    parityUnused: 0,
    nacksSent: 0,
    keyframeRequests: 0,
    malformed: {
      "too-short": 0,
      "too-large": 0,
      "unsupported-version": 0,
      "unknown-type": 0,
      "bad-length": 0,
      "bad-field": 0,
    },
    drops: Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as Record<
      ReassemblyDropReason,
      number
    >,
  };

  constructor(sink: ReassemblerSink, options: ReassemblerOptions = {}) {
    const pick = (name: keyof typeof DEFAULTS, min: number): number => {
      const value = options[name] ?? DEFAULTS[name];
      if (!Number.isInteger(value) || value < min)
        throw new RangeError(`${name} must be an integer >= ${min}`);
      return value;
    };
    this.#sink = sink;
    this.#maxFrames = pick("maxFramesInFlight", 1);
    this.#maxBytes = pick("maxBufferedBytes", 64 * 1024);
    this.#maxAge = pick("maxFrameAgeMs", 1);
    this.#grace = pick("reorderGraceMs", 0);
    this.#nackRetry = pick("nackRetryMs", 1);
    this.#maxNackRounds = pick("maxNackRounds", 0);
    this.#keyframeInterval = pick("keyframeRequestIntervalMs", 1);
    this.#maxGap = pick("maxFrameIdGap", this.#maxFrames);
  }

  /** Frames held now (complete, assembling, or given up but not yet passed). */
  get framesInFlight(): number {
    return this.#frames.size;
  }

  /** Bytes charged against `maxBufferedBytes` now. */
  get bufferedBytes(): number {
    return this.#bytes;
  }

  /** True while non-keyframes are withheld. */
  get awaitingKeyframe(): boolean {
    return this.#needKeyframe;
  }

  /**
   * Takes one video-channel DATA or PARITY message (after the channel id). The bytes are not retained.
   * Completed frames are delivered from inside this call.
   */
  receive(bytes: Uint8Array, now: number): void {
    const h = this.#header;
    const error = decodeVideoFragmentInto(bytes, h);
    if (error !== undefined) {
      this.stats.malformed[error]++;
      this.#drop("malformed", undefined);
      return;
    }
    const id = h.frameId;
    if (!this.#started) {
      this.#started = true;
      this.#startedAt = now;
      this.#nextId = id;
    }
    const distance = frameIdDistance(id, this.#nextId);
    if (distance < 0) {
      // Before the first delivery, fragments of an earlier frame may simply have been overtaken: move back.
      if (this.#everDelivered || -distance > this.#maxGap) {
        // Parity trailing a frame that completed from its data alone is the normal case, not a drop.
        if (h.kind === VideoMessageKind.Parity) this.stats.parityUnused++;
        else this.#drop("stale", id);
        return;
      }
      this.#nextId = id;
    } else if (distance >= this.#maxGap) {
      this.#resync(id, h.keyframe, now);
    }

    let frame = this.#frames.get(id);
    if (frame === undefined) {
      frame = this.#open(h, now);
      if (frame === undefined) {
        this.#settle(now);
        return;
      }
    } else if (frame.status === "lost") {
      this.#drop("stale", id);
      return;
    } else if (frame.status === "complete") {
      this.#drop("duplicate", id);
      return;
    } else if (
      h.count !== frame.count ||
      h.frameLength !== frame.frameLength ||
      h.fragmentSize !== frame.fragmentSize ||
      h.groupSize !== frame.groupSize ||
      h.keyframe !== frame.keyframe ||
      h.timestampMs !== frame.timestampMs
    ) {
      this.#drop("inconsistent", id);
      return;
    }
    frame.lastArrival = now;
    if (h.kind === VideoMessageKind.Data) this.#onData(frame, bytes, h.index);
    else this.#onParity(frame, bytes, h.groupIndex);
    if (frame.status === "assembling" && frame.received === frame.count) this.#complete(frame);
    this.#settle(now);
  }

  /**
   * Drives time: sends NACKs for frames that stopped receiving, gives up frames whose NACK rounds or age ran
   * out, repeats keyframe requests, and delivers whatever that unblocks.
   */
  poll(now: number): void {
    const needKeyframe = this.#needKeyframe;
    let keyframeFloor: number | undefined;
    if (needKeyframe) keyframeFloor = this.#lowestKeyframe();
    for (const frame of this.#frames.values()) {
      if (frame.status !== "assembling") continue;
      // A non-keyframe the decoder cannot use anyway is not worth a NACK; the head rule drops it.
      if (
        needKeyframe &&
        !frame.keyframe &&
        (keyframeFloor === undefined || !frameIdBefore(keyframeFloor, frame.id))
      )
        continue;
      if (now - frame.lastArrival < this.#grace) continue;
      if (frame.nackRounds < this.#maxNackRounds) {
        if (frame.nackRounds === 0 || now - frame.lastNackAt >= this.#nackRetry) {
          frame.nackRounds++;
          frame.lastNackAt = now;
          this.stats.nacksSent++;
          this.#sink.nack({ frameId: frame.id, all: false, missing: this.#missing(frame) });
        }
      } else if (this.#maxNackRounds === 0 || now - frame.lastNackAt >= this.#nackRetry) {
        this.#lose(frame, "unrecoverable", now);
      }
    }
    if (this.#maxNackRounds > 0) this.#nackAbsent(now);
    this.#advance(now);
    if (this.#keyframeWanted && now - this.#lastKeyframeRequestAt >= this.#keyframeInterval) {
      this.#emitKeyframeRequest(now);
    }
  }

  #open(h: VideoFragmentFields, now: number): FrameState | undefined {
    const id = h.frameId;
    // After a loss every id before the head was given up, so a non-keyframe at the head can never be
    // decoded: refuse it without allocating. (Before the first delivery an earlier keyframe may still
    // arrive, and later frames may follow a keyframe not seen yet: those are held, within the bounds.)
    if (this.#needKeyframe && !h.keyframe && this.#everDelivered && id === this.#nextId) {
      this.#drop("awaiting-keyframe", id);
      // Pass it at once, so a keyframe right behind it does not wait for it; its other fragments are stale.
      this.#nextId = nextFrameId(id);
      this.#requestKeyframe(now, "awaiting-keyframe", id);
      this.#dirty = true;
      return undefined;
    }
    const groups = fecGroupCount(h.count, h.groupSize);
    const cost = FRAME_OVERHEAD + roundUp4(h.frameLength) + h.count + groups;
    if (cost > this.#maxBytes) {
      // Can never fit: give it up for good (a marker is cheap), so the head does not wait for it.
      if (!this.#makeRoom(id, FRAME_OVERHEAD, now)) return undefined;
      const marker = this.#createFrame(h, now, FRAME_OVERHEAD, false);
      this.#lose(marker, "over-budget", now);
      return undefined;
    }
    if (!this.#makeRoom(id, cost, now)) return undefined;
    return this.#createFrame(h, now, cost, true);
  }

  #createFrame(h: VideoFragmentFields, now: number, cost: number, allocate: boolean): FrameState {
    const groups = fecGroupCount(h.count, h.groupSize);
    const frame: FrameState = {
      id: h.frameId,
      keyframe: h.keyframe,
      timestampMs: h.timestampMs,
      frameLength: h.frameLength,
      count: h.count,
      groupSize: h.groupSize,
      fragmentSize: h.fragmentSize,
      status: "assembling",
      buffer: allocate ? new Uint8Array(roundUp4(h.frameLength)) : undefined,
      have: allocate ? new Uint8Array(h.count + groups) : undefined,
      parity: undefined,
      received: 0,
      cost,
      firstSeen: now,
      lastArrival: now,
      nackRounds: 0,
      lastNackAt: now,
    };
    this.#frames.set(frame.id, frame);
    this.#absent.delete(frame.id);
    this.#bytes += cost;
    return frame;
  }

  /**
   * Frees room for a frame `id` costing `cost`: gives up the oldest frames held, or reports false (after
   * giving `id` up) when `id` itself is the oldest.
   */
  #makeRoom(id: number, cost: number, now: number): boolean {
    while (this.#frames.size >= this.#maxFrames || this.#bytes + cost > this.#maxBytes) {
      let lowest: FrameState | undefined;
      for (const frame of this.#frames.values()) {
        if (lowest === undefined || frameIdBefore(frame.id, lowest.id)) lowest = frame;
      }
      if (lowest === undefined) return this.#bytes + cost <= this.#maxBytes;
      if (frameIdBefore(id, lowest.id)) {
        this.#drop("evicted", id);
        this.#passThrough(id, "evicted", now);
        return false;
      }
      this.#remove(lowest);
      if (lowest.status !== "lost") this.#drop("evicted", lowest.id);
      this.#passThrough(lowest.id, "evicted", now);
    }
    return true;
  }

  /** Gives up every id up to and including `id` (nothing held is older): the decoder needs a keyframe. */
  #passThrough(id: number, reason: ReassemblyDropReason, now: number): void {
    this.#nextId = nextFrameId(id);
    this.#needKeyframe = true;
    this.#requestKeyframe(now, reason, id);
    this.#dirty = true;
  }

  #onData(frame: FrameState, bytes: Uint8Array, index: number): void {
    const { have, buffer } = frame;
    if (have === undefined || buffer === undefined) return;
    if (have[index] !== 0) {
      this.#drop("duplicate", frame.id);
      return;
    }
    buffer.set(bytes.subarray(VIDEO_FRAGMENT_HEADER_LEN), index * frame.fragmentSize);
    have[index] = 1;
    frame.received++;
    if (frame.groupSize === 0) return;
    const group = Math.floor(index / frame.groupSize);
    const slot = frame.count + group;
    const held = (have[slot] as number) + 1;
    have[slot] = held;
    const stored = frame.parity?.[group];
    if (stored === undefined || frame.parity === undefined) return;
    const members = fecGroupMembers(frame.count, frame.groupSize, group);
    if (held === members - 1) {
      if (!this.#recover(frame, group, stored)) return;
    }
    if ((have[slot] as number) >= members - 1) {
      frame.parity[group] = undefined;
      frame.cost -= stored.length;
      this.#bytes -= stored.length;
    }
  }

  #onParity(frame: FrameState, bytes: Uint8Array, group: number): void {
    const { have } = frame;
    if (have === undefined) return;
    const members = fecGroupMembers(frame.count, frame.groupSize, group);
    const held = have[frame.count + group] as number;
    if (held === members) {
      this.stats.parityUnused++;
      return;
    }
    if (frame.parity?.[group] !== undefined) {
      this.#drop("duplicate", frame.id);
      return;
    }
    const payload = bytes.subarray(VIDEO_FRAGMENT_HEADER_LEN);
    if (held === members - 1) {
      this.#scratch.set(payload);
      this.#recover(frame, group, this.#scratch);
      return;
    }
    const size = roundUp4(payload.length);
    if (this.#bytes + size > this.#maxBytes) {
      this.#drop("over-budget", frame.id);
      return;
    }
    const copy = new Uint8Array(size);
    copy.set(payload);
    if (frame.parity === undefined) frame.parity = new Array(fecGroupCount(frame.count, frame.groupSize));
    frame.parity[group] = copy;
    frame.cost += size;
    this.#bytes += size;
  }

  /**
   * Rebuilds the one missing data fragment of `group` from `parity` (XORed in place). Before trusting the
   * result it checks the bytes past the missing fragment's length are zero, as the parity definition demands;
   * if not, the sender's fragments disagree and the frame is given up as corrupt rather than delivered.
   */
  #recover(frame: FrameState, group: number, parity: Uint8Array): boolean {
    const { have, buffer, count, fragmentSize: size } = frame;
    if (have === undefined || buffer === undefined) return false;
    const first = group * frame.groupSize;
    const members = fecGroupMembers(count, frame.groupSize, group);
    const lastLength = frame.frameLength - (count - 1) * size;
    const parityLength = members === 1 ? lastLength : size;
    let missing = -1;
    for (let i = first; i < first + members; i++) {
      if (have[i] === 0) missing = i;
      else xorInto(parity, 0, buffer, i * size, i === count - 1 ? lastLength : size);
    }
    if (missing < 0) return false;
    const length = missing === count - 1 ? lastLength : size;
    for (let k = length; k < parityLength; k++) {
      if (parity[k] !== 0) {
        this.#lose(frame, "corrupt", frame.lastArrival);
        return false;
      }
    }
    buffer.set(parity.subarray(0, length), missing * size);
    have[missing] = 1;
    have[count + group] = (have[count + group] as number) + 1;
    frame.received++;
    this.stats.fragmentsRecovered++;
    return true;
  }

  #complete(frame: FrameState): void {
    frame.status = "complete";
    // Bookkeeping is no longer needed; only the frame bytes stay charged.
    const freed = frame.have === undefined ? 0 : frame.have.length;
    let parityBytes = 0;
    for (const stored of frame.parity ?? []) if (stored !== undefined) parityBytes += stored.length;
    frame.have = undefined;
    frame.parity = undefined;
    frame.cost -= freed + parityBytes;
    this.#bytes -= freed + parityBytes;
    this.#dirty = true;
  }

  /** Gives up a frame but keeps a small marker, so the head knows to pass it instead of waiting. */
  #lose(frame: FrameState, reason: ReassemblyDropReason, now: number): void {
    if (frame.status === "lost") return;
    frame.status = "lost";
    frame.buffer = undefined;
    frame.have = undefined;
    frame.parity = undefined;
    this.#bytes -= frame.cost - FRAME_OVERHEAD;
    frame.cost = FRAME_OVERHEAD;
    this.#drop(reason, frame.id);
    this.#dirty = true;
    // Ask now rather than when the frame reaches the head: the keyframe is a round trip away.
    this.#requestKeyframe(now, reason, frame.id);
  }

  #remove(frame: FrameState): void {
    this.#frames.delete(frame.id);
    this.#bytes -= frame.cost;
  }

  #settle(now: number): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    this.#advance(now);
  }

  /** Delivers, withholds or gives up frames at the head, in frame-id order, until it has to wait. */
  #advance(now: number): void {
    this.#dirty = false;
    for (;;) {
      const id = this.#nextId;
      const head = this.#frames.get(id);
      if (head !== undefined) {
        if (head.status === "lost") {
          this.#remove(head);
          this.#nextId = nextFrameId(id);
          this.#needKeyframe = true;
          continue;
        }
        if (this.#needKeyframe && !head.keyframe) {
          // Before the first delivery, a keyframe overtaken by this frame may still arrive (the head then
          // moves back to it): wait out the reorder grace. Otherwise the frame can never be decoded.
          if (!this.#everDelivered && now - head.firstSeen < this.#grace) {
            if (this.#supersede(now)) continue;
            return;
          }
          this.#remove(head);
          this.#nextId = nextFrameId(id);
          this.#drop("withheld", id);
          this.#requestKeyframe(now, "withheld", id);
          continue;
        }
        if (head.status === "complete") {
          // The very first frame waits out the reorder grace: an earlier frame it overtook may still
          // arrive and become the head, which is impossible once anything was delivered.
          if (!this.#everDelivered && now - this.#startedAt < this.#grace) return;
          this.#remove(head);
          this.#nextId = nextFrameId(id);
          this.#deliver(head);
          continue;
        }
        if (now - head.firstSeen >= this.#maxAge) {
          this.#remove(head);
          this.#drop("expired", id);
          this.#passThrough(id, "expired", now);
          continue;
        }
        if (this.#supersede(now)) continue;
        return;
      }
      // The head was never seen. Every held frame is later; the earliest of them bounds how long to wait.
      const earliest = this.#frames.values().next();
      if (earliest.done === true) return;
      const waited = now - earliest.value.firstSeen;
      let reason: ReassemblyDropReason | undefined;
      if (waited >= this.#maxAge) reason = "expired";
      else if (this.#maxNackRounds === 0) {
        if (waited >= this.#grace) reason = "unrecoverable";
      } else {
        const absent = this.#absent.get(id);
        if (
          absent !== undefined &&
          absent.rounds >= this.#maxNackRounds &&
          now - absent.lastNackAt >= this.#nackRetry
        )
          reason = "unrecoverable";
      }
      if (reason === undefined) {
        if (this.#supersede(now)) continue;
        return;
      }
      this.#absent.delete(id);
      this.#drop(reason, id);
      this.#passThrough(id, reason, now);
    }
  }

  /**
   * While the head waits: a complete keyframe held for at least the reorder grace makes every older frame
   * moot (nothing after a keyframe references what came before it), so skip to it instead of waiting for
   * NACKs or the age limit. The grace keeps plain reordering across frames from costing a frame.
   */
  #supersede(now: number): boolean {
    let keyframe: FrameState | undefined;
    for (const frame of this.#frames.values()) {
      if (frame.status !== "complete" || !frame.keyframe || now - frame.lastArrival < this.#grace) continue;
      if (keyframe === undefined || frameIdBefore(frame.id, keyframe.id)) keyframe = frame;
    }
    if (keyframe === undefined) return false;
    for (const other of [...this.#frames.values()]) {
      if (!frameIdBefore(other.id, keyframe.id)) continue;
      this.#remove(other);
      if (other.status !== "lost") this.#drop("superseded", other.id);
    }
    this.#nextId = keyframe.id;
    return true;
  }

  #deliver(frame: FrameState): void {
    const buffer = frame.buffer;
    if (buffer === undefined) return;
    if (frame.keyframe) {
      this.#needKeyframe = false;
      this.#keyframeWanted = false;
      this.#lastKeyframeRequestAt = Number.NEGATIVE_INFINITY;
    }
    this.#everDelivered = true;
    this.stats.framesDelivered++;
    this.#sink.frame({
      frameId: frame.id,
      keyframe: frame.keyframe,
      timestampMs: frame.timestampMs,
      bytes: buffer.subarray(0, frame.frameLength),
    });
  }

  /** Whole-frame NACKs for ids between held frames that were never seen, once later frames waited `grace`. */
  #nackAbsent(now: number): void {
    for (const id of this.#absent.keys()) {
      if (frameIdBefore(id, this.#nextId)) this.#absent.delete(id);
    }
    if (this.#frames.size === 0) return;
    let top = 0;
    for (const frame of this.#frames.values()) {
      const distance = frameIdDistance(frame.id, this.#nextId);
      if (distance > top) top = distance;
    }
    top = Math.min(top, this.#maxFrames);
    let evidence = Number.POSITIVE_INFINITY;
    for (let d = top; d >= 0; d--) {
      const id = addFrameId(this.#nextId, d);
      const frame = this.#frames.get(id);
      if (frame !== undefined) {
        evidence = Math.min(evidence, frame.firstSeen);
        continue;
      }
      if (now - evidence < this.#grace) continue;
      // While a keyframe is needed, an unseen frame might be it: worth asking for.
      let absent = this.#absent.get(id);
      if (absent === undefined) {
        absent = { rounds: 0, lastNackAt: now };
        this.#absent.set(id, absent);
      } else if (absent.rounds >= this.#maxNackRounds || now - absent.lastNackAt < this.#nackRetry) continue;
      absent.rounds++;
      absent.lastNackAt = now;
      this.stats.nacksSent++;
      this.#sink.nack({ frameId: id, all: true, missing: [] });
    }
  }

  /** The missing data indexes of an assembling frame, lowest first, at most MAX_NACK_INDEXES. */
  #missing(frame: FrameState): number[] {
    const out: number[] = [];
    const have = frame.have;
    if (have === undefined) return out;
    for (let i = 0; i < frame.count && out.length < MAX_NACK_INDEXES; i++) if (have[i] === 0) out.push(i);
    return out;
  }

  /** The earliest keyframe held that is not given up, if any. */
  #lowestKeyframe(): number | undefined {
    let lowest: number | undefined;
    for (const frame of this.#frames.values()) {
      if (!frame.keyframe || frame.status === "lost") continue;
      if (lowest === undefined || frameIdBefore(frame.id, lowest)) lowest = frame.id;
    }
    return lowest;
  }

  #resync(id: number, keyframe: boolean, now: number): void {
    for (const frame of [...this.#frames.values()]) {
      this.#remove(frame);
      this.#drop("resync", frame.id);
    }
    this.#absent.clear();
    this.#nextId = id;
    this.#needKeyframe = true;
    if (!keyframe) this.#requestKeyframe(now, "resync", addFrameId(id, -1));
  }

  #requestKeyframe(now: number, reason: ReassemblyDropReason, givenUpThrough: number): void {
    if (!this.#keyframeWanted || frameIdBefore(this.#givenUpThrough, givenUpThrough)) {
      this.#givenUpThrough = givenUpThrough;
    }
    if (!this.#keyframeWanted) {
      this.#keyframeWanted = true;
      this.#keyframeReason = reason;
    }
    if (now - this.#lastKeyframeRequestAt >= this.#keyframeInterval) this.#emitKeyframeRequest(now);
  }

  #emitKeyframeRequest(now: number): void {
    this.#lastKeyframeRequestAt = now;
    this.stats.keyframeRequests++;
    this.#sink.keyframeRequest({ givenUpThrough: this.#givenUpThrough, reason: this.#keyframeReason });
  }

  #drop(reason: ReassemblyDropReason, frameId: number | undefined): void {
    this.stats.drops[reason]++;
    this.#sink.drop?.(reason, frameId);
  }
}
