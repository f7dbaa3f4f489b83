#!/usr/bin/env -S node --max-semi-space-size=2
// `wavry-relay`: runs relay-node/main.ts (TypeScript, loaded through tsx). Configuration: OPERATIONS.md.
import { register } from "tsx/esm/api";

register();
await import("../relay-node/main.ts");
