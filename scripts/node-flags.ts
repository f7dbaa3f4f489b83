/**
 * Node/V8 flags every long-running Wavry process starts with: the endpoint daemons (`wavry host`, `wavry connect`),
 * the relay, and `npm run bench:e2e`, which stands for them.
 *
 * `--max-semi-space-size=2` caps V8's young generation at 2 MiB per semi-space (the default lets it grow to
 * 16 MiB). A young collection stops the process's only thread, and every datagram waits behind it; a small young
 * generation makes them more frequent but short. In bench:e2e (three runs against four default ones, the same
 * CPU): the client's longest pause 1.5-4.2 ms against 5.5-7.5 ms, and the p99 transport delay 1.2-1.9 ms against
 * 1.9-2.8 ms direct, 1.8-2.3 ms against 3.2-3.9 ms relayed.
 *
 * The same flags stand in the first line of bin/wavry.js and bin/wavry-relay.js, in the `bench:e2e` script and in
 * OPERATIONS.md's systemd unit; test/node/bin.test.ts holds each of them to this list.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=2"];
