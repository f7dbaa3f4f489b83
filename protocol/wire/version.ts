/**
 * The wire protocol version. It is the first byte of every peer and relay datagram and is bound into the
 * Noise prologue, so peers or relays of different versions fail at once and clearly
 * (`unsupported-version`), never by a confusing decrypt failure.
 */
export const PROTOCOL_VERSION = 1;

/** Session ids are 16 random bytes chosen by the edge when it creates a session. */
export const SESSION_ID_LEN = 16;
