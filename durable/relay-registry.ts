import { DurableObject } from "cloudflare:workers";

/** Placeholder: the relay registry (issue 4) fills this in. */
export class RelayRegistry extends DurableObject {}
