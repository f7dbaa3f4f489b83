#!/usr/bin/env -S node --max-semi-space-size=2
// `wavry`: the endpoint command (endpoint/cli/main.ts, loaded through tsx). `wavry --help` lists commands.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../endpoint/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
