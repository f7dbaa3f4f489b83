import { MAX_FRAME_BYTES } from "./video-fragment.ts";

/**
 * Incremental H.264 Annex B parser (ITU-T H.264 Annex B, §7.4.1.2.3): bytes arrive in arbitrary chunks from an
 * encoder pipe, complete access units come out, one contiguous buffer each, ready for the fragmenter.
 *
 * Byte stream layout: `[zero_byte 00] 00 00 01 <nal_unit> ...`, the NAL header byte being
 * `forbidden_zero_bit:1 | nal_ref_idc:2 | nal_unit_type:5`.
 *
 * An access unit ends where the next one starts (§7.4.1.2.3): at an access unit delimiter (type 9, which x264
 * writes with `aud=1`), or, once the current unit holds a slice, at an SEI, SPS or PPS (types 6..8), a
 * reserved prefix type (14..18), or a slice whose `first_mb_in_slice` is 0 (a new picture). The last rule is
 * the simple form of §7.4.1.2.4 that is exact for encoders writing one picture per access unit, which x264
 * does with `-bf 0`; it keeps streams without delimiters working too.
 *
 * Never throws on input: garbage is skipped or dropped with a counted reason. Memory is bounded by the
 * largest access unit accepted plus one internal chunk.
 */

/** NAL unit types this parser acts on (H.264 Table 7-1). */
export const NalType = {
  /** Coded slice of a non-IDR picture. */
  Slice: 1,
  /** Coded slice of an IDR picture: decoding can start here. */
  IdrSlice: 5,
  Sei: 6,
  Sps: 7,
  Pps: 8,
  /** Access unit delimiter: always the first NAL of an access unit. */
  Aud: 9,
} as const;

/** One complete access unit: every NAL of one picture, start codes included. */
export interface AccessUnit {
  /** Annex B bytes of the unit; a fresh buffer owned by the caller. */
  readonly data: Uint8Array;
  /** The unit holds an IDR slice and the SPS and PPS to decode it, so a decoder can start here. */
  readonly keyframe: boolean;
}

/**
 * Why bytes were dropped; each doubles as a metric label.
 * - `too-large`: an access unit grew beyond `maxAccessUnitBytes`.
 * - `no-picture`: NAL units that ended before any slice (an access unit must hold a picture).
 * - `garbage`: bytes before the first start code.
 */
export type AnnexBDropReason = "too-large" | "no-picture" | "garbage";

/** Limits, checked once when the parser is built. */
export interface AnnexBParserOptions {
  /** The largest access unit passed on, 16 bytes..4 MiB (the transport's MAX_FRAME_BYTES, the default). */
  readonly maxAccessUnitBytes?: number;
}

/** Chunks are appended in slices of at most this size, so one huge chunk cannot grow the buffer unboundedly. */
const SLICE_BYTES = 64 * 1024;
/** Bytes a start code and the two bytes read behind it may span (`00 00 00 01 hdr b0`). */
const START_CODE_SPAN = 6;
const MIN_ACCESS_UNIT_BYTES = 16;

/** Splits an Annex B byte stream into access units. One parser per stream: an encoder restart needs a new one. */
export class AnnexBParser {
  readonly maxAccessUnitBytes: number;
  /** Drops by reason, counted per access unit (or per run of leading garbage). */
  readonly drops: Record<AnnexBDropReason, number> = { "too-large": 0, "no-picture": 0, garbage: 0 };

  #buf: Uint8Array;
  #len = 0;
  /** Next index to look for a start code from. */
  #pos = 0;
  /** Start of the current access unit in #buf, or -1 before the first start code. */
  #auStart = -1;
  /** The current unit overflowed: its bytes are skipped until the next unit starts. */
  #discarding = false;
  #garbage = false;
  #hasSlice = false;
  #hasIdr = false;
  #hasSps = false;
  #hasPps = false;

  constructor(options: AnnexBParserOptions = {}) {
    const max = options.maxAccessUnitBytes ?? MAX_FRAME_BYTES;
    if (!Number.isInteger(max) || max < MIN_ACCESS_UNIT_BYTES || max > MAX_FRAME_BYTES)
      throw new RangeError(
        `maxAccessUnitBytes must be ${MIN_ACCESS_UNIT_BYTES}..${MAX_FRAME_BYTES}, got ${max}`,
      );
    this.maxAccessUnitBytes = max;
    this.#buf = new Uint8Array(Math.min(max, 256 * 1024) + SLICE_BYTES + START_CODE_SPAN);
  }

  /** Feeds the next bytes of the stream; returns the access units they completed, in order. */
  push(chunk: Uint8Array): AccessUnit[] {
    const out: AccessUnit[] = [];
    for (let at = 0; at < chunk.length; at += SLICE_BYTES) {
      this.#append(chunk.subarray(at, Math.min(chunk.length, at + SLICE_BYTES)));
      this.#scan(out);
    }
    return out;
  }

  /** Ends the stream: returns the last access unit if it holds a picture, and resets the parser. */
  flush(): AccessUnit[] {
    const out: AccessUnit[] = [];
    if (this.#auStart >= 0 && !this.#discarding) this.#emit(this.#len, out);
    else if (this.#auStart < 0 && this.#len > 0) this.drops.garbage++;
    this.#len = 0;
    this.#pos = 0;
    this.#auStart = -1;
    this.#discarding = false;
    this.#garbage = false;
    this.#resetFlags();
    return out;
  }

  /** Bytes held while waiting for the end of the current access unit. */
  get bufferedBytes(): number {
    return this.#len;
  }

  #append(bytes: Uint8Array): void {
    // Keep only what can still be emitted or is needed to recognise a start code straddling chunks.
    const keepFrom = this.#auStart >= 0 && !this.#discarding ? this.#auStart : Math.max(0, this.#pos - 1);
    if (keepFrom > 0) {
      if (this.#auStart < 0 && !this.#garbage) {
        this.#garbage = true;
        this.drops.garbage++;
      }
      this.#buf.copyWithin(0, keepFrom, this.#len);
      this.#len -= keepFrom;
      this.#pos -= keepFrom;
      if (this.#auStart >= 0) this.#auStart = Math.max(0, this.#auStart - keepFrom);
    }
    const need = this.#len + bytes.length;
    if (need > this.#buf.length) {
      // Grows at most to maxAccessUnitBytes + a slice: #scan discards a unit before it gets larger.
      const grown = new Uint8Array(Math.max(need, Math.min(this.#buf.length * 2, this.#capacityLimit())));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(bytes, this.#len);
    this.#len = need;
  }

  #capacityLimit(): number {
    return this.maxAccessUnitBytes + SLICE_BYTES + 2 * START_CODE_SPAN;
  }

  #scan(out: AccessUnit[]): void {
    const len = this.#len;
    // Only the filled part: reading past it would see stale bytes of earlier units.
    const buf = this.#buf.subarray(0, len);
    let pos = this.#pos;
    for (;;) {
      const one = buf.indexOf(1, pos + 2);
      if (one < 0) {
        pos = Math.max(pos, len - 2);
        break;
      }
      if (buf[one - 1] !== 0 || buf[one - 2] !== 0) {
        pos = one - 1;
        continue;
      }
      const start = one - 2;
      const header = buf[one + 1];
      if (header === undefined) {
        pos = start;
        break;
      }
      if ((header & 0x80) !== 0) {
        // forbidden_zero_bit set: not a NAL header (§7.4.1), so these bytes are payload, not a start code.
        pos = one - 1;
        continue;
      }
      const type = header & 0x1f;
      const isSlice = type === NalType.Slice || type === NalType.IdrSlice;
      const sliced = this.#hasSlice || this.#discarding;
      let newPicture = false;
      if (isSlice && sliced) {
        const first = buf[one + 2];
        if (first === undefined) {
          pos = start;
          break;
        }
        // first_mb_in_slice is ue(v) and comes first: it is 0 exactly when its first bit is 1.
        newPicture = (first & 0x80) !== 0;
      }
      const boundary =
        this.#auStart < 0 ||
        type === NalType.Aud ||
        (sliced &&
          (newPicture || (type >= NalType.Sei && type <= NalType.Pps) || (type >= 14 && type <= 18)));
      if (boundary) {
        // A four-byte start code's zero_byte belongs to the next unit.
        const cut = start > 0 && buf[start - 1] === 0 && start - 1 > this.#auStart ? start - 1 : start;
        if (this.#auStart >= 0 && !this.#discarding) this.#emit(cut, out);
        else if (this.#auStart < 0 && cut > 0 && !this.#garbage) this.drops.garbage++;
        this.#discarding = false;
        this.#garbage = false;
        this.#auStart = cut;
        this.#resetFlags();
      }
      if (isSlice) this.#hasSlice = true;
      if (type === NalType.IdrSlice) this.#hasIdr = true;
      else if (type === NalType.Sps) this.#hasSps = true;
      else if (type === NalType.Pps) this.#hasPps = true;
      pos = one + 1;
    }
    this.#pos = pos;
    if (
      this.#auStart >= 0 &&
      !this.#discarding &&
      len - this.#auStart > this.maxAccessUnitBytes + START_CODE_SPAN
    ) {
      this.drops["too-large"]++;
      this.#discarding = true;
    }
  }

  #emit(end: number, out: AccessUnit[]): void {
    const size = end - this.#auStart;
    if (size <= 0) return;
    if (!this.#hasSlice) this.drops["no-picture"]++;
    else if (size > this.maxAccessUnitBytes) this.drops["too-large"]++;
    else
      out.push({
        // One copy per unit: chunks cut units anywhere, and the internal buffer is reused.
        data: this.#buf.slice(this.#auStart, end),
        keyframe: this.#hasIdr && this.#hasSps && this.#hasPps,
      });
  }

  #resetFlags(): void {
    this.#hasSlice = false;
    this.#hasIdr = false;
    this.#hasSps = false;
    this.#hasPps = false;
  }
}
