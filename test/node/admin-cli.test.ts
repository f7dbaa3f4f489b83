import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../relay-node/clock.ts";
import { EdgeClient as RelayEdgeClient } from "../../relay-node/edge-client.ts";
import { loadOrCreateIdentity } from "../../relay-node/identity.ts";
import { callEdge, type LocalEdge, startLocalEdge } from "../support/local-edge.ts";
import { runWavry, type WavryRun } from "../support/run-wavry.ts";

// Issue 6, end to end: the real `wavry admin` bin (node + tsx) against the real edge in workerd on loopback. Each
// command's happy path and one failure, and the audit log shows every action.

type Run = WavryRun;

const PASSWORD = "correct horse battery staple";
let edge: LocalEdge;
let scratch: string;
let adminToken: string;
let adminId: string;
const runs: Run[] = [];

async function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const result = await runWavry(
    args,
    {
      HOME: scratch,
      WAVRY_ENVIRONMENT: "development",
      WAVRY_EDGE_URL: edge.url,
      WAVRY_ADMIN_TOKEN_FILE: path.join(scratch, "admin-token"),
      ...env,
    },
    60_000,
  );
  runs.push(result);
  return result;
}

const admin = (...args: string[]) => run(["admin", ...args]);

async function ok(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await run(["admin", ...args], env);
  expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

async function fails(args: string[], code: 1 | 2, message: RegExp, env: Record<string, string> = {}) {
  const r = await run(["admin", ...args], env);
  expect(r.status, `${args.join(" ")}: ${r.stdout} ${r.stderr}`).toBe(code);
  expect(r.stderr, args.join(" ")).toMatch(message);
}

async function api<T>(route: string, body?: unknown, method?: string): Promise<T> {
  const r = await callEdge<T>(edge.url, route, {
    token: adminToken,
    ...(body !== undefined && { body }),
    ...(method !== undefined && { method }),
  });
  expect(r.status, `${route} ${JSON.stringify(r.json)}`).toBeLessThan(300);
  return r.json;
}

function secretFile(name: string, content: string, mode = 0o600): string {
  const file = path.join(scratch, name);
  writeFileSync(file, content, { mode });
  chmodSync(file, mode);
  return file;
}

const masterKeys = generateKeyPairSync("ed25519");

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), "wavry-admin-cli-"));
  const masterX = masterKeys.publicKey.export({ format: "jwk" }).x;
  if (typeof masterX !== "string") throw new Error("key export");
  secretFile("master.pem", masterKeys.privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  edge = await startLocalEdge({
    WAVRY_RELAY_MASTER_PUBLIC_KEY: masterX,
    WAVRY_AUTH_RATE_LIMIT: "1000",
    WAVRY_ADMIN_RATE_LIMIT: "10000",
  });
  const boot = await callEdge<{ id: string; token: string }>(edge.url, "/v1/admin/bootstrap", {
    token: edge.bootstrapToken,
    body: { name: "incident commander" },
  });
  expect(boot.status).toBe(201);
  adminToken = boot.json.token;
  adminId = boot.json.id;
  secretFile("admin-token", `${adminToken}\n`);
  secretFile("shared-token", `${adminToken}\n`, 0o644);
  const reader = await api<{ token: string }>("/v1/admin/tokens", { name: "reader", scopes: ["read"] });
  secretFile("reader-token", `${reader.token}\n`);
}, 120_000);

afterAll(async () => {
  await edge?.stop();
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
});

/** A user signed in, with an enrolled device (through the real `wavry` commands), its id and token family. */
async function userWithDevice() {
  const email = `admin-cli-${crypto.randomUUID()}@example.com`;
  const reg = await api<{ userId: string }>("/v1/auth/register", { email, password: PASSWORD });
  const home = path.join(scratch, `home-${crypto.randomUUID()}`);
  const env = { WAVRY_HOME: home, WAVRY_PASSWORD: PASSWORD };
  for (const args of [["init"], ["login", email], ["enroll", "--name", "laptop"]]) {
    const r = await run(args, env);
    expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  }
  const devices = await run(["devices", "--json"], env);
  const deviceId =
    (JSON.parse(devices.stdout) as { devices: { deviceId: string }[] }).devices[0]?.deviceId ?? "";
  const login = await api<{ accessToken: string }>("/v1/auth/login", { email, password: PASSWORD });
  const claims = JSON.parse(Buffer.from(login.accessToken.split(".")[1] ?? "", "base64url").toString()) as {
    fam: string;
  };
  return { userId: reg.userId, deviceId, familyId: claims.fam };
}

describe("wavry admin", () => {
  it("prints its help and refuses unknown subcommands, missing tokens and shared token files", async () => {
    const help = await admin("--help");
    expect(help.status).toBe(0);
    for (const sub of [
      "revoke-device",
      "rotate-lease-key",
      "relay-state",
      "incident close",
      "audit --verify",
    ])
      expect(help.stdout).toContain(sub);
    await fails(["frobnicate"], 2, /unknown subcommand 'frobnicate'/);
    await fails(["blocks"], 2, /--token-file FILE or set WAVRY_ADMIN_TOKEN_FILE/, {
      WAVRY_ADMIN_TOKEN_FILE: "",
    });
    await fails(["blocks"], 1, /readable by other users; chmod 600/, {
      WAVRY_ADMIN_TOKEN_FILE: path.join(scratch, "shared-token"),
    });
    await fails(["blocks", "--edge", "http://edge.example.com"], 2, /--edge must use https/, {
      WAVRY_ENVIRONMENT: "production",
      WAVRY_EDGE_URL: "",
    });
  });

  it("revokes a device, a user's tokens and a token family", async () => {
    const u = await userWithDevice();
    expect(await ok(["revoke-device", u.deviceId])).toContain(`revoked device ${u.deviceId}`);
    await fails(["revoke-device", u.deviceId], 1, /HTTP 404.*not_found/);
    expect(await ok(["revoke-family", u.familyId])).toContain(`revoked token family ${u.familyId}`);
    await fails(["revoke-family", "fam_nope"], 1, /HTTP 404/);
    expect(
      await ok(["revoke-user-tokens", u.userId, "--token-file", path.join(scratch, "admin-token")]),
    ).toContain(u.userId);
    await fails(["revoke-user-tokens", "../tokens"], 2, /USER_ID must be/);
    const users = JSON.parse(await ok(["users", "--query", "admin-cli-"])) as { users: { id: string }[] };
    expect(users.users.map((x) => x.id)).toContain(u.userId);
    await fails(["users", "--query"], 2, /--query/);
    expect(await ok(["suspend-user", u.userId, "--reason", "credential stuffing"])).toContain(
      `suspended user ${u.userId}`,
    );
    await fails(["suspend-user", "u_nope", "--reason", "x"], 1, /HTTP 404/);
  });

  it("creates a replacement admin token into a 0600 file, lists and revokes admin tokens", async () => {
    const file = path.join(scratch, "replacement-token");
    const created = await ok([
      "create-admin-token",
      "--name",
      "replacement",
      "--scopes",
      "read,audit",
      "--ttl",
      "1h",
      "--out",
      file,
    ]);
    const tokenId = /created admin token (adm_\S+)/.exec(created)?.[1] ?? "";
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const replacement = readFileSync(file, "utf8").trim();
    expect(replacement).toMatch(/^wvadm_/);
    expect(created).not.toContain(replacement);
    await fails(
      ["create-admin-token", "--name", "x", "--scopes", "read", "--out", file],
      1,
      /already exists/,
    );
    const bad = path.join(scratch, "bad-scope-token");
    await fails(["create-admin-token", "--name", "x", "--scopes", "everything", "--out", bad], 1, /HTTP 400/);
    expect(existsSync(bad)).toBe(false);
    const asReplacement = { WAVRY_ADMIN_TOKEN_FILE: file };
    expect(await ok(["lease-keys"], asReplacement)).toContain("leaseKeys");
    const tokens = JSON.parse(await ok(["admin-tokens"])) as { tokens: { id: string }[] };
    expect(tokens.tokens.map((t) => t.id)).toContain(tokenId);
    expect(await ok(["revoke-admin-token", tokenId])).toContain(`revoked admin token ${tokenId}`);
    await fails(["lease-keys"], 1, /HTTP 401.*invalid_token/, asReplacement);
    await fails(["revoke-admin-token", tokenId], 1, /HTTP 404/);
    for (const r of runs) expect(r.stdout + r.stderr).not.toContain(replacement);
  });

  it("rotates the token-signing keys; a token without the keys scope is refused", async () => {
    const before = await api<{ keys: { kid: string; status: string }[] }>("/v1/admin/keys");
    const next = before.keys.find((k) => k.status === "next")?.kid ?? "(none)";
    expect(await ok(["rotate-keys"])).toContain(`current ${next}`);
    await fails(["rotate-keys"], 1, /HTTP 403.*insufficient_scope/, {
      WAVRY_ADMIN_TOKEN_FILE: path.join(scratch, "reader-token"),
    });
  });

  it("rotates the lease key with the master key, optionally revoking the previous one", async () => {
    const first = await ok([
      "rotate-lease-key",
      "--master-key",
      path.join(scratch, "master.pem"),
      "--days",
      "7",
    ]);
    const firstKid = /lease key (lk_\S+) is active/.exec(first)?.[1] ?? "";
    expect(firstKid).not.toBe("");
    const second = await ok([
      "rotate-lease-key",
      "--master-key",
      path.join(scratch, "master.pem"),
      "--revoke-previous",
    ]);
    const secondKid = /lease key (lk_\S+) is active/.exec(second)?.[1] ?? "";
    expect(second).toContain(`revoked previous lease key ${firstKid}`);
    const keys = await api<{ leaseKeys: { kid: string; status: string }[] }>("/v1/admin/lease-keys");
    expect(Object.fromEntries(keys.leaseKeys.map((k) => [k.kid, k.status]))).toMatchObject({
      [firstKid]: "revoked",
      [secondKid]: "active",
    });
    // No master key: refused before anything is created on the edge.
    await fails(
      ["rotate-lease-key", "--master-key", path.join(scratch, "nope.pem")],
      1,
      /cannot read the master key/,
    );
    const after = await api<{ leaseKeys: unknown[] }>("/v1/admin/lease-keys");
    expect(after.leaseKeys.length).toBe(keys.leaseKeys.length);
    await fails(["rotate-lease-key", "--master-key", "x", "--days", "91"], 2, /--days/);
  });

  it("blocks and unblocks a range at the edge and in the relays' control answer; quarantines and bans a relay", async () => {
    // A real relay identity, enrolled and registered with the edge.
    const enrollment = await api<{ token: string }>("/v1/admin/relays/enrollment-tokens", {});
    const { identity } = loadOrCreateIdentity(path.join(scratch, "relay.key"));
    const relay = new RelayEdgeClient({
      edgeUrl: new URL(edge.url),
      identity,
      clock: systemClock,
      random: (n) => randomBytes(n),
    });
    expect((await relay.enroll(enrollment.token)).ok).toBe(true);
    const register = () =>
      relay.register({ region: "test", publicAddr: "127.0.0.1:4433", version: "test", maxSessions: 10 });

    const blocked = await ok(["block", "203.0.113.0/24", "--reason", "credential stuffing", "--ttl", "2h"]);
    const blockId = /as (blk_\S+)/.exec(blocked)?.[1] ?? "";
    expect(blockId).not.toBe("");
    const listed = JSON.parse(await ok(["blocks"])) as {
      blocks: { id: string; expires_at: number | null }[];
    };
    expect(listed.blocks.find((b) => b.id === blockId)?.expires_at).toBeGreaterThan(Date.now() + 7_000_000);
    const control = await register();
    expect(control.ok && control.value.blockedCidrs).toContain("203.0.113.0/24");
    // (The edge refusing a blocked address is shown in test/workers/admin.test.ts: from loopback, every request
    // comes from 127.0.0.1.)
    await fails(["block", "not-a-cidr", "--reason", "x"], 1, /HTTP 400/);
    await fails(["block", "198.51.100.0/24"], 2, /--reason is required/);
    expect(await ok(["unblock", blockId])).toContain(blockId);
    await fails(["unblock", blockId], 1, /HTTP 404/);
    const afterUnblock = await register();
    expect(afterUnblock.ok && afterUnblock.value.blockedCidrs).not.toContain("203.0.113.0/24");

    const relays = JSON.parse(await ok(["relays"])) as { relays: { id: string }[] };
    expect(relays.relays.map((r) => r.id)).toContain(identity.relayId);
    expect(
      await ok(["relay-state", identity.relayId, "quarantine", "--reason", "suspected compromise"]),
    ).toContain("quarantined");
    const quarantined = await register();
    expect(quarantined.ok && quarantined.value.state).toBe("quarantined");
    expect(await ok(["relay-state", identity.relayId, "ban", "--reason", "key leaked"])).toContain("banned");
    expect((await register()).ok).toBe(false);
    await fails(
      ["relay-state", identity.relayId, "explode", "--reason", "x"],
      2,
      /quarantine, ban, drain or none/,
    );
    await fails(["relay-state", "r_nope", "ban", "--reason", "x"], 1, /HTTP 404/);
  });

  it("opens, annotates, links and closes an incident; a closed one refuses more", async () => {
    const opened = await ok([
      "incident",
      "open",
      "--title",
      "leaked admin token",
      "--severity",
      "critical",
      "--description",
      "token seen in a CI log",
    ]);
    const id = /opened incident (inc_\S+)/.exec(opened)?.[1] ?? "";
    expect(id).not.toBe("");
    await fails(
      ["incident", "open", "--title", "t", "--severity", "meh", "--description", "d"],
      2,
      /--severity/,
    );
    expect(await ok(["incident", "note", id, "--text", "revoked the token"])).toContain(`to ${id}`);
    const audit = await api<{ entries: { seq: number }[] }>("/v1/admin/audit?limit=1");
    const seq = audit.entries[0]?.seq ?? 0;
    expect(await ok(["incident", "link", id, "--audit", String(seq)])).toContain(`linked audit ${seq}`);
    expect(await ok(["incident", "link", id, "--alert", "alr_spike1"])).toContain("linked alert alr_spike1");
    await fails(["incident", "link", id, "--audit", "99999999"], 1, /HTTP 404/);
    await fails(["incident", "link", id], 2, /exactly one of --audit/);
    const shown = JSON.parse(await ok(["incident", "show", id])) as {
      timeline: { kind: string }[];
      links: { audit: { seq: number }[]; alerts: string[] };
    };
    expect(shown.timeline.map((e) => e.kind)).toEqual(["note", "audit", "alert"]);
    expect(shown.links.audit.map((a) => a.seq)).toEqual([seq]);
    const list = JSON.parse(await ok(["incident", "list", "--status", "open"])) as {
      incidents: { id: string }[];
    };
    expect(list.incidents.map((i) => i.id)).toContain(id);
    const close = [
      "incident",
      "close",
      id,
      "--summary",
      "revoked in 5 min",
      "--blast-radius",
      "none found in the audit log",
      "--preventive-controls",
      "mask tokens in CI",
    ];
    expect(await ok(close)).toContain(`closed incident ${id}`);
    await fails(close, 1, /HTTP 409.*closed/);
    await fails(["incident", "note", id, "--text", "late"], 1, /HTTP 409/);
    await fails(["incident", "show", "inc_nope"], 1, /HTTP 404/);
  });

  it("lists and acknowledges alerts, reads and verifies the audit log, runs the preflight", async () => {
    const alerts = JSON.parse(await ok(["alerts"])) as { alerts: unknown[] };
    expect(Array.isArray(alerts.alerts)).toBe(true);
    await fails(["alerts", "ack", "alr_doesnotexist"], 1, /HTTP 404/);
    await fails(["alerts", "ack"], 2, /alerts ack ALERT_ID/);
    expect(await ok(["audit", "--verify"])).toMatch(/audit chain intact \(\d+ rows\)/);
    const page = JSON.parse(await ok(["audit", "--limit", "3"])) as { entries: unknown[] };
    expect(page.entries.length).toBe(3);
    await fails(["audit", "--limit", "many"], 2, /--limit must be a whole number/);
    // The preflight's verdict depends on the tree it checks; what matters here is that it ran and set the exit code.
    const preflight = await admin("preflight", "--env", "development");
    const verdict = /preflight \(development\): \d+ passed, (\d+) failed/.exec(preflight.stdout);
    expect(verdict, preflight.stdout + preflight.stderr).not.toBeNull();
    expect(preflight.status).toBe(verdict?.[1] === "0" ? 0 : 1);
    await fails(["preflight", "--bogus"], 2, /bad usage/);
  });

  it("the audit log holds every action with the admin's token id, and no output ever shows the token", async () => {
    const { entries } = await api<{
      entries: { actor: string | null; method: string; path: string; outcome: string; status: number }[];
    }>("/v1/admin/audit?limit=500");
    const allowed = (method: string, pattern: RegExp) =>
      entries.some(
        (e) => e.actor === adminId && e.method === method && pattern.test(e.path) && e.outcome === "allowed",
      );
    const expected: [string, RegExp][] = [
      ["POST", /^\/v1\/admin\/devices\/[^/]+\/revoke$/],
      ["POST", /^\/v1\/admin\/users\/[^/]+\/revoke-tokens$/],
      ["POST", /^\/v1\/admin\/token-families\/[^/]+\/revoke$/],
      ["GET", /^\/v1\/admin\/users$/],
      ["POST", /^\/v1\/admin\/users\/[^/]+\/suspend$/],
      ["POST", /^\/v1\/admin\/keys\/rotate$/],
      ["POST", /^\/v1\/admin\/tokens$/],
      ["DELETE", /^\/v1\/admin\/tokens\/adm_/],
      ["GET", /^\/v1\/admin\/lease-keys$/],
      ["POST", /^\/v1\/admin\/lease-keys$/],
      ["POST", /^\/v1\/admin\/lease-keys\/[^/]+\/certificate$/],
      ["POST", /^\/v1\/admin\/lease-keys\/[^/]+\/revoke$/],
      ["POST", /^\/v1\/admin\/address-blocks$/],
      ["DELETE", /^\/v1\/admin\/address-blocks\/blk_/],
      ["GET", /^\/v1\/admin\/address-blocks$/],
      ["GET", /^\/v1\/admin\/relays$/],
      ["POST", /^\/v1\/admin\/relays\/[^/]+\/state$/],
      ["POST", /^\/v1\/admin\/incidents$/],
      ["POST", /^\/v1\/admin\/incidents\/inc_[^/]+\/entries$/],
      ["POST", /^\/v1\/admin\/incidents\/inc_[^/]+\/links$/],
      ["POST", /^\/v1\/admin\/incidents\/inc_[^/]+\/close$/],
      ["GET", /^\/v1\/admin\/incidents\/inc_[^/]+$/],
      ["GET", /^\/v1\/admin\/alerts$/],
      ["GET", /^\/v1\/admin\/audit\/verify$/],
    ];
    for (const [method, pattern] of expected)
      expect(allowed(method, pattern), `${method} ${pattern}`).toBe(true);
    // Failures are recorded too: the refused second close, the reader's rotation attempt.
    expect(entries.some((e) => /\/close$/.test(e.path) && e.status === 409)).toBe(true);
    expect(entries.some((e) => e.path === "/v1/admin/keys/rotate" && e.status === 403)).toBe(true);
    expect(runs.length).toBeGreaterThan(40);
    for (const r of runs) expect(r.stdout + r.stderr).not.toContain(adminToken);
  });
});
