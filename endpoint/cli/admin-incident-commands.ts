import type { KeyObject } from "node:crypto";
import { closeSync, fchmodSync, openSync, unlinkSync, writeSync } from "node:fs";
import { loadMasterKey, signLeaseKeyCertificate } from "../../scripts/wavry-admin.ts";
import {
  type AdminSubcommand,
  adminCall,
  durationSecs,
  idArg,
  printJson,
  requiredFlag,
} from "./admin-client.ts";
import { type CliIo, CommandFailure, stringFlag, UsageError } from "./cli-context.ts";

/**
 * `wavry admin incident …`, `rotate-lease-key`, `create-admin-token` and `preflight` (issue 6). The incident verbs
 * map one to one onto /v1/admin/incidents (API.md); a closed incident is final.
 */

const SEVERITIES = ["critical", "high", "medium", "low"] as const;
const DEFAULT_CERT_DAYS = 30;
const MAX_CERT_DAYS = 90;

/** `wavry admin incident open|list|show|note|link|close`. */
export const incidentCommand: AdminSubcommand = {
  flags: {
    title: { type: "string" },
    severity: { type: "string" },
    description: { type: "string" },
    status: { type: "string" },
    text: { type: "string" },
    audit: { type: "string" },
    alert: { type: "string" },
    summary: { type: "string" },
    "blast-radius": { type: "string" },
    "preventive-controls": { type: "string" },
  },
  positionals: [1, 2],
  usage: "incident open|list|show|note|link|close …",
  async run(io, connection, parsed) {
    const verb = parsed.positionals[0];
    const needs = (count: number) => {
      if (parsed.positionals.length !== count)
        throw new UsageError(`usage: wavry admin incident ${verb}${count === 2 ? " INCIDENT_ID" : ""} …`);
    };
    switch (verb) {
      case "open": {
        needs(1);
        const severity = requiredFlag(parsed, "severity");
        if (!(SEVERITIES as readonly string[]).includes(severity))
          throw new UsageError(`--severity must be one of ${SEVERITIES.join(", ")}`);
        const r = (await adminCall(connection, "POST", "/incidents", {
          title: requiredFlag(parsed, "title"),
          severity,
          description: requiredFlag(parsed, "description"),
        })) as { id?: unknown };
        io.out(`opened incident ${String(r.id)}\n`);
        return;
      }
      case "list": {
        needs(1);
        const status = stringFlag(parsed, "status");
        if (status !== undefined && status !== "open" && status !== "closed")
          throw new UsageError("--status must be open or closed");
        printJson(
          io,
          await adminCall(connection, "GET", `/incidents${status === undefined ? "" : `?status=${status}`}`),
        );
        return;
      }
      case "show":
        needs(2);
        printJson(io, await adminCall(connection, "GET", `/incidents/${idArg(parsed, 1, "INCIDENT_ID")}`));
        return;
      case "note": {
        needs(2);
        const id = idArg(parsed, 1, "INCIDENT_ID");
        const r = (await adminCall(connection, "POST", `/incidents/${id}/entries`, {
          text: requiredFlag(parsed, "text"),
        })) as { entryId?: unknown };
        io.out(`added entry ${String(r.entryId)} to ${id}\n`);
        return;
      }
      case "link": {
        needs(2);
        const id = idArg(parsed, 1, "INCIDENT_ID");
        const audit = stringFlag(parsed, "audit");
        const alert = stringFlag(parsed, "alert");
        if ((audit === undefined) === (alert === undefined))
          throw new UsageError("give exactly one of --audit SEQ or --alert ALERT_ID");
        let body: { type: "audit"; seq: number } | { type: "alert"; id: string };
        if (audit !== undefined) {
          if (!/^\d{1,15}$/.test(audit)) throw new UsageError("--audit must be an audit row's seq number");
          body = { type: "audit", seq: Number(audit) };
        } else {
          body = { type: "alert", id: alert ?? "" };
        }
        await adminCall(connection, "POST", `/incidents/${id}/links`, body);
        io.out(`linked ${body.type} ${body.type === "audit" ? body.seq : body.id} to ${id}\n`);
        return;
      }
      case "close": {
        needs(2);
        const id = idArg(parsed, 1, "INCIDENT_ID");
        await adminCall(connection, "POST", `/incidents/${id}/close`, {
          summary: requiredFlag(parsed, "summary"),
          blastRadius: requiredFlag(parsed, "blast-radius"),
          preventiveControls: requiredFlag(parsed, "preventive-controls"),
        });
        io.out(`closed incident ${id}\n`);
        return;
      }
      default:
        throw new UsageError("wavry admin incident: the verb must be open, list, show, note, link or close");
    }
  },
};

function activeLeaseKeys(answer: unknown): string[] {
  const keys = (answer as { leaseKeys?: unknown } | null)?.leaseKeys;
  if (!Array.isArray(keys)) throw new CommandFailure("the edge's lease-key list is malformed");
  return keys
    .filter((k): k is { kid: string; status: string } => typeof k?.kid === "string" && k.status === "active")
    .map((k) => k.kid);
}

/**
 * `wavry admin rotate-lease-key --master-key FILE [--days N] [--revoke-previous]`: the edge generates a lease key,
 * the master key (read here, never sent) certifies it, the certificate is uploaded, and the new key signs every
 * lease from then on. With --revoke-previous every other active lease key is revoked (relays drop it with their
 * next heartbeat); without, old keys stay valid until their certificates expire, so sessions in flight keep going.
 */
export const rotateLeaseKeyCommand: AdminSubcommand = {
  flags: {
    "master-key": { type: "string" },
    days: { type: "string" },
    "revoke-previous": { type: "boolean" },
  },
  positionals: [0, 0],
  usage: "rotate-lease-key --master-key FILE [--days N] [--revoke-previous]",
  async run(io, connection, parsed) {
    const daysText = stringFlag(parsed, "days") ?? String(DEFAULT_CERT_DAYS);
    const days = /^\d{1,3}$/.test(daysText) ? Number(daysText) : Number.NaN;
    if (!(days >= 1 && days <= MAX_CERT_DAYS))
      throw new UsageError(`--days must be a whole number from 1 to ${MAX_CERT_DAYS}`);
    let master: KeyObject;
    try {
      // Read first: a missing master key must not leave a pending key behind on the edge.
      master = loadMasterKey(requiredFlag(parsed, "master-key"));
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw new CommandFailure(error instanceof Error ? error.message : "cannot read the master key");
    }
    const previous =
      parsed.flags["revoke-previous"] === true
        ? activeLeaseKeys(await adminCall(connection, "GET", "/lease-keys"))
        : [];
    const created = (await adminCall(connection, "POST", "/lease-keys", {})) as {
      kid?: unknown;
      publicKey?: unknown;
    };
    const kid = typeof created.kid === "string" ? created.kid : "";
    let certificate: string;
    try {
      certificate = await signLeaseKeyCertificate(master, kid, String(created.publicKey), days, Date.now());
    } catch (error) {
      const why = error instanceof Error ? error.message : "signing failed";
      throw new CommandFailure(`cannot certify lease key ${kid} (${why}); it stays pending and unused`);
    }
    await adminCall(connection, "POST", `/lease-keys/${kid}/certificate`, { certificate });
    io.out(`lease key ${kid} is active (certificate valid ${days} days)\n`);
    for (const old of previous.filter((k) => k !== kid)) {
      await adminCall(connection, "POST", `/lease-keys/${old}/revoke`, {});
      io.out(`revoked previous lease key ${old}\n`);
    }
  },
};

/**
 * `wavry admin preflight …`: the release preflight (scripts/preflight.ts, loaded on demand so an installation
 * without it still runs every other command). Its exit code carries over: 1 failures found, 2 bad usage.
 */
export async function preflightCommand(_io: CliIo, args: readonly string[]): Promise<void> {
  const specifier = new URL("../../scripts/preflight.ts", import.meta.url).href;
  let run: unknown;
  try {
    const loaded: unknown = await import(specifier);
    run = (loaded as { runPreflight?: unknown }).runPreflight;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ERR_MODULE_NOT_FOUND") throw error;
  }
  if (typeof run !== "function") {
    throw new CommandFailure("preflight not available (scripts/preflight.ts with runPreflight is missing)");
  }
  const code: unknown = await run([...args]);
  if (code === 0) return;
  if (code === 2) throw new UsageError("wavry admin preflight: bad usage (see above)");
  throw new CommandFailure("the preflight found failures (see above)");
}

/**
 * `wavry admin create-admin-token --name N --scopes a,b [--ttl 8h] --out FILE`: a replacement or narrower admin
 * token (a leaked one is revoked after its replacement exists). The token goes into FILE (created, mode 0600, never
 * overwritten) and is never printed.
 */
export const createAdminTokenCommand: AdminSubcommand = {
  flags: {
    name: { type: "string" },
    scopes: { type: "string" },
    ttl: { type: "string" },
    out: { type: "string" },
  },
  positionals: [0, 0],
  usage: "create-admin-token --name NAME --scopes read,users,… [--ttl 8h] --out FILE",
  async run(io, connection, parsed) {
    const out = requiredFlag(parsed, "out");
    const scopes = requiredFlag(parsed, "scopes")
      .split(",")
      .map((scope) => scope.trim())
      .filter((scope) => scope !== "");
    const ttl = stringFlag(parsed, "ttl");
    let fd: number;
    try {
      // Created before the call: a file that cannot be written must not cost a token shown nowhere.
      fd = openSync(out, "wx", 0o600);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new CommandFailure(
        code === "EEXIST" ? `${out} already exists` : `cannot create ${out} (${code})`,
      );
    }
    let written = false;
    try {
      fchmodSync(fd, 0o600);
      const r = (await adminCall(connection, "POST", "/tokens", {
        name: requiredFlag(parsed, "name"),
        scopes,
        ...(ttl !== undefined && { ttlSecs: durationSecs(ttl, "ttl") }),
      })) as { id?: unknown; token?: unknown; expiresAt?: unknown };
      if (typeof r.token !== "string") throw new CommandFailure("the edge's answer holds no token");
      writeSync(fd, `${r.token}\n`);
      written = true;
      io.out(
        `created admin token ${String(r.id)} (${scopes.join(" ")}), expires ${new Date(Number(r.expiresAt)).toISOString()}; written to ${out}\n`,
      );
    } finally {
      closeSync(fd);
      // No empty token file left behind when the edge refused.
      if (!written) unlinkSync(out);
    }
  },
};
