import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { emptySourceStats, type UnitHandler, type VideoSource } from "../../endpoint/media/video-source.ts";
import type { PeerLinkEvents } from "../../endpoint/peer-link/peer-link.ts";
import { HostSession } from "../../endpoint/session/host-session.ts";
import { MEASURED_SEQ_LEN } from "../../endpoint/session/session-wire.ts";
import { Channel, encodeChannelPayload } from "../../protocol/channels/channel.ts";
import { encodeEvents } from "../../protocol/channels/reliable-input.ts";
import { encodeKeyframeRequest } from "../../protocol/media/keyframe-request.ts";
import { encodeNack } from "../../protocol/media/nack.ts";
import { decodeVideoFragment } from "../../protocol/media/video-fragment.ts";

// Host session behaviour against a fake link: what it sends, in which order, and what it asks of the source.

class FakeLink extends EventEmitter<PeerLinkEvents> {
  readonly sent: Uint8Array[] = [];
  send(plaintext: Uint8Array): boolean {
    this.sent.push(plaintext.slice());
    return true;
  }
  deliver(plaintext: Uint8Array): void {
    this.emit("data", plaintext[0] as Channel, plaintext.subarray(1));
  }
}

class ManualSource implements VideoSource {
  readonly kind = "test";
  readonly stats = emptySourceStats();
  readonly bitrateKbps = 1000;
  keyframeRequests = 0;
  bitrates: number[] = [];
  #onUnit: UnitHandler | undefined;
  start(onUnit: UnitHandler): void {
    this.#onUnit = onUnit;
  }
  async stop(): Promise<void> {
    this.#onUnit = undefined;
  }
  requestKeyframe(): void {
    this.keyframeRequests++;
  }
  setBitrate(kbps: number): void {
    this.bitrates.push(kbps);
  }
  emit(bytes: number, keyframe: boolean): void {
    this.#onUnit?.({ data: new Uint8Array(bytes).fill(7), keyframe, timestampMs: 0 });
  }
}

const sessions: HostSession[] = [];
afterEach(async () => {
  for (const session of sessions.splice(0)) await session.close();
});

function host(link: FakeLink, source: ManualSource): { session: HostSession; inputs: unknown[] } {
  const inputs: unknown[] = [];
  const session = new HostSession({ link, source, onInput: (event) => inputs.push(event) });
  sessions.push(session);
  return { session, inputs };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const videoSent = (link: FakeLink) => link.sent.filter((p) => p[0] === Channel.Video);

describe("host session", () => {
  it("answers input at once, ahead of queued video, and delivers events in order", () => {
    const link = new FakeLink();
    const source = new ManualSource();
    const { session, inputs } = host(link, source);
    source.emit(400_000, true);
    expect(session.queuedBytes).toBeGreaterThan(100_000);
    const before = link.sent.length;
    link.deliver(
      encodeEvents(0, [
        { type: "key", down: true, code: "KeyQ", modifiers: 0 },
        { type: "wheel", dx: 1, dy: 2 },
      ]),
    );
    expect(link.sent.length).toBe(before + 1);
    expect(link.sent.at(-1)?.[0]).toBe(Channel.Input);
    expect(inputs).toEqual([
      { type: "key", down: true, code: "KeyQ", modifiers: 0 },
      { type: "wheel", dx: 1, dy: 2 },
    ]);
  });

  it("paces a large frame out over time and prefixes every datagram with a running sequence", async () => {
    const link = new FakeLink();
    const source = new ManualSource();
    const { session } = host(link, source);
    source.emit(300_000, true);
    const first = videoSent(link).length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(100);
    await sleep(200);
    expect(session.queuedBytes).toBe(0);
    const video = videoSent(link);
    expect(video.length).toBeGreaterThan(first);
    video.forEach((plaintext, i) => {
      expect(new DataView(plaintext.buffer).getUint32(1, true)).toBe(i);
      expect(plaintext.length).toBeLessThanOrEqual(1200 - 32);
      expect(decodeVideoFragment(plaintext.subarray(1 + MEASURED_SEQ_LEN)).ok).toBe(true);
    });
  });

  it("answers both copies of a NACK once, and keyframe requests only when no later keyframe was sent", async () => {
    const link = new FakeLink();
    const source = new ManualSource();
    const { session } = host(link, source);
    source.emit(5000, true);
    source.emit(5000, false);
    await sleep(50);
    const sentBefore = videoSent(link).length;
    const nack = encodeChannelPayload(Channel.Video, encodeNack({ frameId: 1, all: false, missing: [0, 2] }));
    link.deliver(nack);
    link.deliver(nack);
    await sleep(30);
    expect(videoSent(link).length - sentBefore).toBe(2);
    expect(session.stats.fragmentsResent).toBe(2);

    // Frame 0 was a keyframe: a request giving up frames before it is already answered.
    const early = encodeChannelPayload(Channel.Video, encodeKeyframeRequest({ givenUpThrough: 0xffff_ffff }));
    link.deliver(early);
    expect(source.keyframeRequests).toBe(0);
    const request = encodeChannelPayload(Channel.Video, encodeKeyframeRequest({ givenUpThrough: 1 }));
    link.deliver(request);
    link.deliver(request);
    expect(source.keyframeRequests).toBe(1);
    source.emit(5000, true);
    link.deliver(request);
    expect(source.keyframeRequests).toBe(1);
  });
});
