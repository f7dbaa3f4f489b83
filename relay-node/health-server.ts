import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/**
 * `/health` (the process answers), `/ready` (it may be given sessions: registered with the edge at least once, or
 * insecure development mode) and Prometheus `/metrics`, on the health listener, loopback by default. GET and HEAD
 * only, no request body read, nothing else served.
 */
export interface HealthServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** Listens on `host:port`; `ready` is asked on every `/ready`. */
export function startHealthServer(
  host: string,
  port: number,
  ready: () => boolean,
  registry: Registry,
): Promise<HealthServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const json = (status: number, body: object) =>
      response
        .writeHead(status, { "content-type": "application/json", "cache-control": "no-store" })
        .end(JSON.stringify(body));
    switch (path) {
      case "/health":
        json(200, { status: "ok" });
        return;
      case "/ready":
        if (ready()) json(200, { status: "ready" });
        else json(503, { status: "not_ready" });
        return;
      case "/metrics":
        registry.metrics().then(
          (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
          () => response.writeHead(500).end(),
        );
        return;
      default:
        json(404, { error: { code: "not_found", message: "try /health, /ready or /metrics" } });
    }
  });
  // No keep-alive sockets left dangling at shutdown.
  server.keepAliveTimeout = 1000;
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address();
      if (address === null || typeof address === "string") {
        reject(new Error("health listener has no address"));
        return;
      }
      resolve({
        address,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
