import { EncodeError } from "../wire/decode.ts";
import {
  DEFAULT_FRAGMENT_PAYLOAD,
  emptyVideoFragmentFields,
  fecGroupCount,
  MAX_FEC_GROUP,
  MAX_FRAGMENTS_PER_FRAME,
  MAX_FRAME_BYTES,
  MIN_FEC_GROUP,
  VIDEO_FRAGMENT_HEADER_LEN,
  VIDEO_FRAGMENT_MAX_PAYLOAD,
  VideoMessageKind,
  writeVideoFragmentHeader,
} from "./video-fragment.ts";
import { roundUp4 } from "./xor.ts";

/** How a sender cuts frames. Checked once, when the fragmenter is built. */
export interface FragmenterOptions {
  /** Data fragments per parity fragment: 0 (no FEC) or 2..32. */
  readonly groupSize: number;
  /**
   * Frame bytes per data fragment (the last one may be shorter), 1..1143. Defaults to 1140, a multiple of 4,
   * so the receiver's parity XOR runs over aligned 32-bit words. Smaller values suit paths with a smaller MTU.
   */
  readonly fragmentBytes?: number;
}

/** What the encoder says about a frame. */
export interface FrameInfo {
  /** u32; the sender increments it by one per frame (the receiver reads gaps as lost frames). */
  readonly frameId: number;
  readonly keyframe: boolean;
  /** Capture time in milliseconds, any u32 clock (only differences matter). */
  readonly timestampMs: number;
}

/** A frame cut into video-channel messages. */
export interface FragmentedFrame {
  readonly frameId: number;
  readonly keyframe: boolean;
  /** Data fragments (the frame's `fragment_count`). */
  readonly dataCount: number;
  readonly groupSize: number;
  /**
   * The messages to send, in order: each group's data fragments, then that group's parity. All are views into
   * one buffer allocated per frame; a retransmit buffer may keep them as they are.
   */
  readonly payloads: readonly Uint8Array[];
  /** Bytes of the shared backing buffer (what keeping this frame costs). */
  readonly byteLength: number;
}

/** Where data fragment `index` sits in {@link FragmentedFrame.payloads}: after the parities of earlier groups. */
export function dataSendPosition(index: number, groupSize: number): number {
  return groupSize === 0 ? index : index + Math.floor(index / groupSize);
}

/**
 * Splits encoded frames into DATA fragments and XOR PARITY fragments (one per group of `groupSize` data
 * fragments, sent right after its group). Stateless between frames apart from its options.
 */
export class VideoFragmenter {
  readonly groupSize: number;
  readonly fragmentBytes: number;
  /** Bytes per message slot in the frame buffer: header + payload rounded up so every payload is aligned. */
  readonly #stride: number;
  /** Reused header scratch (the fragmenter writes ~2,000 headers a second at 20 Mbit/s). */
  readonly #fields = emptyVideoFragmentFields();

  constructor(options: FragmenterOptions) {
    const { groupSize } = options;
    const fragmentBytes = options.fragmentBytes ?? DEFAULT_FRAGMENT_PAYLOAD;
    if (
      !Number.isInteger(groupSize) ||
      (groupSize !== 0 && (groupSize < MIN_FEC_GROUP || groupSize > MAX_FEC_GROUP))
    )
      throw new RangeError(
        `groupSize must be 0 (no FEC) or ${MIN_FEC_GROUP}..${MAX_FEC_GROUP}, got ${groupSize}`,
      );
    if (!Number.isInteger(fragmentBytes) || fragmentBytes < 1 || fragmentBytes > VIDEO_FRAGMENT_MAX_PAYLOAD)
      throw new RangeError(`fragmentBytes must be 1..${VIDEO_FRAGMENT_MAX_PAYLOAD}, got ${fragmentBytes}`);
    this.groupSize = groupSize;
    this.fragmentBytes = fragmentBytes;
    this.#stride = VIDEO_FRAGMENT_HEADER_LEN + roundUp4(fragmentBytes);
  }

  /** The number of messages (data + parity) a frame of `frameLength` bytes becomes. */
  messageCount(frameLength: number): number {
    const count = Math.ceil(frameLength / this.fragmentBytes);
    return count + fecGroupCount(count, this.groupSize);
  }

  /**
   * Cuts `frame` (1..4 MiB) into messages. The frame is copied once, into a single buffer holding every
   * message; parity is computed there over 32-bit words. Throws EncodeError for an empty or oversized frame,
   * or one that needs more than 4096 fragments at this fragment size.
   */
  fragment(frame: Uint8Array, info: FrameInfo): FragmentedFrame {
    const frameLength = frame.length;
    if (frameLength === 0) throw new EncodeError("empty frame");
    if (frameLength > MAX_FRAME_BYTES) throw new EncodeError("frame larger than MAX_FRAME_BYTES");
    if (!Number.isInteger(info.frameId) || info.frameId < 0 || info.frameId > 0xffff_ffff)
      throw new EncodeError("frame id out of range");
    if (!Number.isInteger(info.timestampMs) || info.timestampMs < 0 || info.timestampMs > 0xffff_ffff)
      throw new EncodeError("timestamp out of range");
    const size = this.fragmentBytes;
    const groupSize = this.groupSize;
    const count = Math.ceil(frameLength / size);
    if (count > MAX_FRAGMENTS_PER_FRAME) throw new EncodeError("frame needs too many fragments");
    const groups = fecGroupCount(count, groupSize);
    const stride = this.#stride;
    const buffer = new Uint8Array((count + groups) * stride);
    // The buffer starts at offset 0 of its own ArrayBuffer and strides are multiples of 4: word view is aligned.
    const words = new Uint32Array(buffer.buffer, 0, buffer.length >>> 2);
    const payloads: Uint8Array[] = new Array(count + groups);
    const fields = this.#fields;
    fields.keyframe = info.keyframe;
    fields.frameId = info.frameId;
    fields.count = count;
    fields.groupSize = groupSize;
    fields.timestampMs = info.timestampMs;
    fields.frameLength = frameLength;
    const lastLength = frameLength - (count - 1) * size;

    let slot = 0;
    for (let index = 0; index < count; index++) {
      const length = index === count - 1 ? lastLength : size;
      const at = slot * stride;
      fields.kind = VideoMessageKind.Data;
      fields.last = index === count - 1;
      fields.index = index;
      fields.groupIndex = groupSize === 0 ? 0 : Math.floor(index / groupSize);
      fields.payloadLength = length;
      writeVideoFragmentHeader(buffer, at, fields);
      buffer.set(frame.subarray(index * size, index * size + length), at + VIDEO_FRAGMENT_HEADER_LEN);
      payloads[slot++] = buffer.subarray(at, at + VIDEO_FRAGMENT_HEADER_LEN + length);

      if (groupSize !== 0 && (index % groupSize === groupSize - 1 || index === count - 1)) {
        const group = Math.floor(index / groupSize);
        const members = index - group * groupSize + 1;
        const parityLength = members === 1 ? length : size;
        const parityAt = slot * stride;
        fields.kind = VideoMessageKind.Parity;
        fields.last = group === groups - 1;
        fields.index = count + group;
        fields.groupIndex = group;
        fields.payloadLength = parityLength;
        writeVideoFragmentHeader(buffer, parityAt, fields);
        // Members sit in the `members` slots just before this one; bytes past a short member are still zero,
        // which is the zero padding the parity definition asks for.
        const parityWord = (parityAt + VIDEO_FRAGMENT_HEADER_LEN) >>> 2;
        const wordCount = (parityLength + 3) >>> 2;
        for (let m = members; m >= 1; m--) {
          const memberWord = ((slot - m) * stride + VIDEO_FRAGMENT_HEADER_LEN) >>> 2;
          for (let w = 0; w < wordCount; w++) {
            words[parityWord + w] = (words[parityWord + w] as number) ^ (words[memberWord + w] as number);
          }
        }
        payloads[slot++] = buffer.subarray(parityAt, parityAt + VIDEO_FRAGMENT_HEADER_LEN + parityLength);
      }
    }
    return {
      frameId: info.frameId,
      keyframe: info.keyframe,
      dataCount: count,
      groupSize,
      payloads,
      byteLength: buffer.length,
    };
  }
}
