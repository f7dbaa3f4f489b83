import { DurableObject } from "cloudflare:workers";

/** Placeholder: signaling rooms (issue 4) fill this in. */
export class SignalingRoom extends DurableObject {}
