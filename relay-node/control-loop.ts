import type {
  RelayControlResponse,
  RelayHeartbeatRequest,
  RelayRegisterRequest,
} from "../protocol/relay/registry-messages.ts";
import type { EdgeClient, EdgeResult } from "./edge-client.ts";
import type { Logger } from "./log.ts";

/**
 * The relay's conversation with the edge, as a small state machine:
 *
 *   enrolling --ok/refused--> registering --ok--> heartbeating --fail--> registering (backoff) …
 *
 * Enrollment happens once per key (an enrollment record is written beside the key file). Register retries with
 * exponential backoff and full jitter; heartbeats run every `heartbeatIntervalMs` the edge asks for, one at a time.
 * Any failed heartbeat goes back to registering, so a relay that the edge forgot, or that was cut off, comes back
 * by itself. Nothing here touches forwarding: sessions keep flowing while the edge is away.
 */
export type ControlPhase =
  | { readonly kind: "idle" }
  | { readonly kind: "enrolling"; readonly attempt: number }
  | { readonly kind: "registering"; readonly attempt: number }
  | { readonly kind: "heartbeating"; readonly intervalMs: number }
  | { readonly kind: "stopped" };

/** What the control loop needs: the edge client, what to send, and where to apply answers. */
export interface ControlLoopOptions {
  readonly client: EdgeClient;
  readonly log: Logger;
  /** A number in [0, 1) for jitter (Math.random in the relay; fixed in tests). */
  readonly jitter: () => number;
  readonly registration: RelayRegisterRequest;
  /** Present until this key has enrolled; `done` records it. */
  readonly enrollment: { readonly token: string; readonly done: () => void } | null;
  readonly heartbeat: () => RelayHeartbeatRequest;
  /** Applies a register or heartbeat answer (key set, revocations, blocks, state). */
  readonly apply: (response: RelayControlResponse) => void;
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
}

const DEFAULT_BACKOFF = { minMs: 1000, maxMs: 60_000 };

/** Drives enrollment, registration and heartbeats (see the state diagram above). */
export class ControlLoop {
  private phase: ControlPhase = { kind: "idle" };
  private timer: NodeJS.Timeout | null = null;
  private everRegistered = false;
  private connected = false;
  private readonly backoff: { readonly minMs: number; readonly maxMs: number };

  constructor(private readonly options: ControlLoopOptions) {
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  /** True once a register succeeded (what `/ready` waits for). */
  get registered(): boolean {
    return this.everRegistered;
  }

  /** True while the last exchange with the edge succeeded. */
  get edgeConnected(): boolean {
    return this.connected;
  }

  get current(): ControlPhase {
    return this.phase;
  }

  start(): void {
    if (this.phase.kind !== "idle") return;
    if (this.options.enrollment !== null) this.go({ kind: "enrolling", attempt: 0 }, 0);
    else this.go({ kind: "registering", attempt: 0 }, 0);
  }

  stop(): void {
    this.phase = { kind: "stopped" };
    this.options.client.close();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private go(phase: ControlPhase, delayMs: number): void {
    if (this.phase.kind === "stopped") return;
    this.phase = phase;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.step(phase).catch((error: unknown) => {
        this.options.log.log("error", "edge_control", "bug", { error: String(error).slice(0, 200) });
        this.go({ kind: "registering", attempt: 0 }, this.delay(0));
      });
    }, delayMs);
    this.timer.unref();
  }

  /** Exponential backoff with full jitter over the upper half: min·2^attempt, capped, times [0.5, 1). */
  private delay(attempt: number): number {
    const ceiling = Math.min(this.backoff.maxMs, this.backoff.minMs * 2 ** Math.min(attempt, 30));
    return Math.round(ceiling * (0.5 + this.options.jitter() / 2));
  }

  private async step(phase: ControlPhase): Promise<void> {
    const { client, log } = this.options;
    switch (phase.kind) {
      case "enrolling": {
        const enrollment = this.options.enrollment;
        if (enrollment === null) return this.go({ kind: "registering", attempt: 0 }, 0);
        const result = await client.enroll(enrollment.token);
        if (this.phase !== phase) return;
        // 409: this key is already enrolled (the record beside the key file was lost): as good as enrolling.
        if (result.ok || result.status === 409) {
          enrollment.done();
          log.log("info", "edge_enroll", result.ok ? "enrolled" : "already_enrolled");
          return this.go({ kind: "registering", attempt: 0 }, 0);
        }
        this.failed("edge_enroll", result);
        if (result.kind === "refused") {
          // A used or expired token, or a key enrolled before: registering tells which, and says so in the log.
          log.log("error", "edge_enroll", "refused", {
            hint: "mint a new token (WAVRY_RELAY_ENROLLMENT_TOKEN) unless this key is already enrolled",
          });
          return this.go({ kind: "registering", attempt: 0 }, 0);
        }
        return this.go({ kind: "enrolling", attempt: phase.attempt + 1 }, this.delay(phase.attempt));
      }
      case "registering": {
        const result = await client.register(this.options.registration);
        if (this.phase !== phase) return;
        if (!result.ok) {
          this.failed("edge_register", result);
          return this.go({ kind: "registering", attempt: phase.attempt + 1 }, this.delay(phase.attempt));
        }
        this.everRegistered = true;
        this.succeeded("edge_register", result.value);
        return this.go(
          { kind: "heartbeating", intervalMs: result.value.heartbeatIntervalMs },
          result.value.heartbeatIntervalMs,
        );
      }
      case "heartbeating": {
        const result = await client.heartbeat(this.options.heartbeat());
        if (this.phase !== phase) return;
        if (!result.ok) {
          this.failed("edge_heartbeat", result);
          return this.go({ kind: "registering", attempt: 0 }, this.delay(0));
        }
        this.succeeded("edge_heartbeat", result.value);
        return this.go(
          { kind: "heartbeating", intervalMs: result.value.heartbeatIntervalMs },
          result.value.heartbeatIntervalMs,
        );
      }
      case "idle":
      case "stopped":
        return;
      default:
        return assertNever(phase);
    }
  }

  private succeeded(event: string, response: RelayControlResponse): void {
    const wasConnected = this.connected;
    this.connected = true;
    this.options.apply(response);
    // Heartbeats every few seconds would drown the log: only registrations and changes are written.
    if (event !== "edge_heartbeat" || !wasConnected) {
      this.options.log.log("info", event, "ok", {
        state: response.state,
        leaseKeyCount: response.leaseKeys.length,
      });
    }
  }

  private failed(event: string, result: EdgeResult<unknown>): void {
    if (result.ok) return;
    const wasConnected = this.connected;
    this.connected = false;
    const level = result.kind === "refused" ? "error" : wasConnected ? "warn" : "info";
    this.options.log.log(level, event, result.kind, {
      status: result.status,
      code: result.code,
    });
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected control phase ${JSON.stringify(value)}`);
}
