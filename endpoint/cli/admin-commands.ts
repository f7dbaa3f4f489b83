import {
  ADMIN_CONNECTION_FLAGS,
  type AdminSubcommand,
  adminCall,
  adminConnectionOf,
  durationSecs,
  idArg,
  printJson,
  requiredFlag,
} from "./admin-client.ts";
import {
  createAdminTokenCommand,
  incidentCommand,
  preflightCommand,
  rotateLeaseKeyCommand,
} from "./admin-incident-commands.ts";
import { type CliIo, CommandFailure, parseCommand, stringFlag, UsageError } from "./cli-context.ts";

/**
 * `wavry admin SUBCOMMAND`: the incident-response tools of the admin API (issue 6; OPERATIONS.md, "Incident
 * response"). Each subcommand is one or a few admin calls; the edge audits every one of them. Ids given on the
 * command line are checked before they go into a URL path.
 */

/** Relay states as operators say them, and as the API names them. */
const RELAY_STATES: Record<string, "none" | "draining" | "quarantined" | "banned"> = {
  none: "none",
  drain: "draining",
  draining: "draining",
  quarantine: "quarantined",
  quarantined: "quarantined",
  ban: "banned",
  banned: "banned",
};

function action(
  usage: string,
  method: "POST" | "DELETE",
  path: (id: string) => string,
  done: (id: string) => string,
  what: string,
): AdminSubcommand {
  return {
    positionals: [1, 1],
    usage,
    async run(io, connection, parsed) {
      const id = idArg(parsed, 0, what);
      await adminCall(connection, method, path(id), method === "POST" ? {} : undefined);
      io.out(`${done(id)}\n`);
    },
  };
}

const SUBCOMMANDS: Record<string, AdminSubcommand> = {
  "revoke-device": action(
    "revoke-device DEVICE_ID",
    "POST",
    (id) => `/devices/${id}/revoke`,
    (id) => `revoked device ${id}; its live connections were closed`,
    "DEVICE_ID",
  ),
  "revoke-user-tokens": action(
    "revoke-user-tokens USER_ID",
    "POST",
    (id) => `/users/${id}/revoke-tokens`,
    (id) => `revoked every session and access token of user ${id}`,
    "USER_ID",
  ),
  "revoke-family": action(
    "revoke-family FAMILY_ID",
    "POST",
    (id) => `/token-families/${id}/revoke`,
    (id) => `revoked token family ${id}`,
    "FAMILY_ID",
  ),
  users: {
    flags: { query: { type: "string" } },
    positionals: [0, 0],
    usage: "users [--query EMAIL_PART]",
    async run(io, connection, parsed) {
      const query = stringFlag(parsed, "query");
      const suffix = query === undefined ? "" : `?q=${encodeURIComponent(query)}`;
      printJson(io, await adminCall(connection, "GET", `/users${suffix}`));
    },
  },
  "suspend-user": {
    flags: { reason: { type: "string" } },
    positionals: [1, 1],
    usage: "suspend-user USER_ID --reason TEXT",
    async run(io, connection, parsed) {
      const userId = idArg(parsed, 0, "USER_ID");
      await adminCall(connection, "POST", `/users/${userId}/suspend`, {
        reason: requiredFlag(parsed, "reason"),
      });
      io.out(`suspended user ${userId}; every session and token of theirs is revoked\n`);
    },
  },
  "rotate-keys": {
    positionals: [0, 0],
    usage: "rotate-keys",
    async run(io, connection) {
      const r = (await adminCall(connection, "POST", "/keys/rotate", {})) as Record<string, unknown>;
      io.out(
        `rotated token-signing keys: current ${String(r.current)}, next ${String(r.next)}, previous ` +
          `${String(r.previous)} (verifies until the tokens it signed have expired)\n`,
      );
    },
  },
  "rotate-lease-key": rotateLeaseKeyCommand,
  "lease-keys": {
    positionals: [0, 0],
    usage: "lease-keys",
    async run(io, connection) {
      printJson(io, await adminCall(connection, "GET", "/lease-keys"));
    },
  },
  "admin-tokens": {
    positionals: [0, 0],
    usage: "admin-tokens",
    async run(io, connection) {
      printJson(io, await adminCall(connection, "GET", "/tokens"));
    },
  },
  "create-admin-token": createAdminTokenCommand,
  "revoke-admin-token": action(
    "revoke-admin-token TOKEN_ID",
    "DELETE",
    (id) => `/tokens/${id}`,
    (id) => `revoked admin token ${id}`,
    "TOKEN_ID",
  ),
  block: {
    flags: { reason: { type: "string" }, ttl: { type: "string" } },
    positionals: [1, 1],
    usage: "block CIDR --reason TEXT [--ttl 24h]",
    async run(io, connection, parsed) {
      const cidr = parsed.positionals[0] ?? "";
      const ttl = stringFlag(parsed, "ttl");
      const r = (await adminCall(connection, "POST", "/address-blocks", {
        cidr,
        reason: requiredFlag(parsed, "reason"),
        ...(ttl !== undefined && { ttlSecs: durationSecs(ttl, "ttl") }),
      })) as Record<string, unknown>;
      io.out(`blocked ${String(r.cidr)} as ${String(r.id)} (edge now; relays with their next heartbeat)\n`);
    },
  },
  unblock: action(
    "unblock BLOCK_ID",
    "DELETE",
    (id) => `/address-blocks/${id}`,
    (id) => `removed address block ${id}`,
    "BLOCK_ID",
  ),
  blocks: {
    positionals: [0, 0],
    usage: "blocks",
    async run(io, connection) {
      printJson(io, await adminCall(connection, "GET", "/address-blocks"));
    },
  },
  relays: {
    positionals: [0, 0],
    usage: "relays",
    async run(io, connection) {
      printJson(io, await adminCall(connection, "GET", "/relays"));
    },
  },
  "relay-state": {
    flags: { reason: { type: "string" } },
    positionals: [2, 2],
    usage: "relay-state RELAY_ID quarantine|ban|drain|none --reason TEXT",
    async run(io, connection, parsed) {
      const relayId = idArg(parsed, 0, "RELAY_ID");
      const state = RELAY_STATES[parsed.positionals[1] ?? ""];
      if (state === undefined) throw new UsageError("the state must be quarantine, ban, drain or none");
      await adminCall(connection, "POST", `/relays/${relayId}/state`, {
        state,
        reason: requiredFlag(parsed, "reason"),
      });
      io.out(`relay ${relayId} is now ${state}\n`);
    },
  },
  incident: incidentCommand,
  alerts: {
    flags: { status: { type: "string" }, note: { type: "string" } },
    positionals: [0, 2],
    usage: "alerts [--status open|acked] | alerts ack ALERT_ID [--note TEXT]",
    async run(io, connection, parsed) {
      const [verb] = parsed.positionals;
      if (verb === undefined) {
        const status = stringFlag(parsed, "status");
        const query = status === undefined ? "" : `?status=${encodeURIComponent(status)}`;
        printJson(io, await adminCall(connection, "GET", `/alerts${query}`));
        return;
      }
      if (verb !== "ack" || parsed.positionals.length !== 2)
        throw new UsageError("usage: wavry admin alerts ack ALERT_ID [--note TEXT]");
      const alertId = idArg(parsed, 1, "ALERT_ID");
      const note = stringFlag(parsed, "note");
      await adminCall(connection, "POST", `/alerts/${alertId}/ack`, note === undefined ? {} : { note });
      io.out(`acknowledged alert ${alertId}\n`);
    },
  },
  audit: {
    flags: { verify: { type: "boolean" }, limit: { type: "string" }, before: { type: "string" } },
    positionals: [0, 0],
    usage: "audit [--limit N] [--before SEQ] | audit --verify",
    async run(io, connection, parsed) {
      if (parsed.flags.verify === true) {
        const r = (await adminCall(connection, "GET", "/audit/verify")) as Record<string, unknown>;
        if (r.intact !== true) {
          throw new CommandFailure(
            `the audit chain is broken at seq ${String(r.firstBadSeq)} (${String(r.rows)} rows checked)`,
          );
        }
        io.out(`audit chain intact (${String(r.rows)} rows)\n`);
        return;
      }
      const params = new URLSearchParams();
      for (const name of ["limit", "before"]) {
        const value = stringFlag(parsed, name);
        if (value === undefined) continue;
        if (!/^\d{1,15}$/.test(value)) throw new UsageError(`--${name} must be a whole number`);
        params.set(name, value);
      }
      const query = params.size === 0 ? "" : `?${params}`;
      printJson(io, await adminCall(connection, "GET", `/audit${query}`));
    },
  },
};

/** The subcommand names, for help and tests. */
export const ADMIN_SUBCOMMANDS = [...Object.keys(SUBCOMMANDS), "preflight"] as const;

/** `wavry admin …`. */
export async function adminCommand(io: CliIo, args: readonly string[]): Promise<void> {
  const [name, ...rest] = args;
  if (name === "preflight") return preflightCommand(io, rest);
  const sub = name === undefined ? undefined : SUBCOMMANDS[name];
  if (name === undefined || sub === undefined) {
    throw new UsageError(
      `wavry admin: ${name === undefined ? "give a subcommand" : `unknown subcommand '${name}'`}\n` +
        "Run 'wavry admin --help' for the list.",
    );
  }
  const parsed = parseCommand(
    `admin ${name}`,
    rest,
    { ...ADMIN_CONNECTION_FLAGS, ...sub.flags },
    sub.positionals[1],
  );
  if (parsed.positionals.length < sub.positionals[0]) {
    throw new UsageError(`usage: wavry admin ${sub.usage}\nRun 'wavry admin --help' for details.`);
  }
  await sub.run(io, adminConnectionOf(io, parsed), parsed);
}
