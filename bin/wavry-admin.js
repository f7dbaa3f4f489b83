#!/usr/bin/env node
// `wavry-admin`: the operator CLI (scripts/wavry-admin.ts, loaded through tsx). `wavry-admin --help` lists commands.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../scripts/wavry-admin.ts");
process.exitCode = await main(process.argv.slice(2));
