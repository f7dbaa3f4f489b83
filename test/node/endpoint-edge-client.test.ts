import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DeviceTokenSource, EdgeClient, EdgeError } from "../../endpoint/edge-client/edge-client.ts";
import { createIdentity } from "../../endpoint/identity/device-identity.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { tokenChallengeMessage } from "../../protocol/identity/device-proofs.ts";

// The client against a scripted fetch: what it sends, how it caches device tokens, how it reports failures.

const dir = mkdtempSync(path.join(tmpdir(), "wavry-edge-client-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const identity = createIdentity(path.join(dir, "state"));
const CHALLENGE = Buffer.alloc(32, 7).toString("base64url");

function scripted(ttlSecs: number) {
  const calls: { path: string; body: unknown; auth: string | null }[] = [];
  let issued = 0;
  const fetcher: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const body: unknown = typeof init?.body === "string" ? JSON.parse(init.body) : null;
    const auth = new Headers(init?.headers).get("authorization");
    calls.push({ path: url.pathname, body, auth });
    if (url.pathname === "/v1/devices/challenge") {
      return Response.json({ challengeId: "c".repeat(22), challenge: CHALLENGE, expiresAt: 0 });
    }
    if (url.pathname === "/v1/devices/token") {
      const signature = Buffer.from((body as { signature: string }).signature, "base64url");
      const message = tokenChallengeMessage({
        challengeId: "c".repeat(22),
        challenge: new Uint8Array(Buffer.from(CHALLENGE, "base64url")),
        deviceId: identity.deviceId,
      });
      if (!nodeBackend.ed25519Verify(identity.ed25519PublicKey, message, signature)) {
        return Response.json({ error: { code: "unauthorized", message: "bad signature" } }, { status: 401 });
      }
      issued += 1;
      return Response.json({
        accessToken: `device-token-${issued}`,
        expiresIn: ttlSecs,
        tokenType: "Bearer",
      });
    }
    if (url.pathname === "/v1/auth/login") {
      return Response.json(
        { error: { code: "unauthorized", message: "invalid email or password" } },
        { status: 401 },
      );
    }
    return new Response("<html>oops</html>", { status: 502 });
  };
  return { calls, fetcher };
}

describe("edge client", () => {
  it("refuses plain http in production", () => {
    expect(
      () => new EdgeClient({ baseUrl: new URL("http://edge.example.com"), environment: "production" }),
    ).toThrow(/https/);
  });

  it("caches a device token until 30 s before expiry, shares concurrent requests, and renews after", async () => {
    let now = 1_000_000;
    const { calls, fetcher } = scripted(600);
    const client = new EdgeClient({
      baseUrl: new URL("https://edge.example.com"),
      environment: "production",
      fetch: fetcher,
      now: () => now,
    });
    const tokens = new DeviceTokenSource(client, identity, () => now);
    const [a, b] = await Promise.all([tokens.token(), tokens.token()]);
    expect([a, b]).toEqual(["device-token-1", "device-token-1"]);
    expect(calls.map((c) => c.path)).toEqual(["/v1/devices/challenge", "/v1/devices/token"]);
    now += 569_000;
    expect(await tokens.token()).toBe("device-token-1");
    now += 2_000;
    expect(await tokens.token()).toBe("device-token-2");
    tokens.invalidate();
    expect(await tokens.token()).toBe("device-token-3");
    expect(calls).toHaveLength(6);
  });

  it("reports the edge's error code and message, never the password; a broken answer is bad-response", async () => {
    const { fetcher } = scripted(600);
    const client = new EdgeClient({
      baseUrl: new URL("https://edge.example.com"),
      environment: "production",
      fetch: fetcher,
    });
    const secret = "hunter2-hunter2-hunter2";
    const failure = await client.login("a@example.com", secret).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(EdgeError);
    expect(failure).toMatchObject({ kind: "refused", status: 401, code: "unauthorized" });
    expect(String(failure)).not.toContain(secret);
    const broken = await client.listDevices("user-token-secret").catch((error: unknown) => error);
    expect(broken).toMatchObject({ kind: "bad-response", status: 502 });
    expect(String(broken)).not.toContain("user-token-secret");
  });

  it("says unreachable when nothing answers", async () => {
    const client = new EdgeClient({ baseUrl: new URL("http://127.0.0.1:1"), environment: "development" });
    await expect(client.login("a@example.com", "x".repeat(12))).rejects.toMatchObject({
      kind: "unreachable",
    });
  });
});
