/**
 * Help text of `wavry` and each command. Kept as data so `wavry --help` and `wavry <command> --help` agree and a
 * test can check every command has one.
 */

const ENVIRONMENT = `Environment:
  WAVRY_HOME         state directory (default ~/.wavry): identity.json, known-peers.json, session.json
  WAVRY_EDGE_URL     the edge origin, e.g. https://edge.example.com
  WAVRY_ENVIRONMENT  production (default; https required) or development`;

const ADMIN_HELP = `Usage: wavry admin SUBCOMMAND [--edge URL] [--token-file FILE] [options]

Incident response through the edge's admin API (OPERATIONS.md, "Incident response"). Every call is recorded
in the edge's audit log. The admin token is read from --token-file or WAVRY_ADMIN_TOKEN_FILE (a file only
you can read: chmod 600), never from the command line, and never printed. The edge is --edge or
WAVRY_EDGE_URL.

Subcommands:
  revoke-device DEVICE_ID            revoke a device and close its connections
  revoke-user-tokens USER_ID         revoke every session and access token of a user
  revoke-family FAMILY_ID            revoke one refresh-token family
  users [--query EMAIL_PART]         list users (status, lockout, failed logins)
  suspend-user USER_ID --reason TEXT suspend a user and revoke all their tokens
  admin-tokens                       list admin tokens (never their values)
  create-admin-token --name N --scopes read,users,… [--ttl 8h] --out FILE
                                     a new admin token, written to FILE (0600), never printed
  revoke-admin-token TOKEN_ID        revoke an admin token (adm_…)
  rotate-keys                        rotate the token-signing keys now (old tokens keep verifying)
  rotate-lease-key --master-key FILE [--days N] [--revoke-previous]
                                     new lease key, certified here with the relay master key
  lease-keys                         list lease keys and their states
  block CIDR --reason TEXT [--ttl 24h]   block an address range (edge now, relays next heartbeat)
  unblock BLOCK_ID                   remove an address block
  blocks                             list address blocks
  relays                             list relays with health and admin state
  relay-state RELAY_ID quarantine|ban|drain|none --reason TEXT
  incident open --title T --severity critical|high|medium|low --description D
  incident list [--status open|closed]
  incident show INCIDENT_ID
  incident note INCIDENT_ID --text T
  incident link INCIDENT_ID --audit SEQ | --alert ALERT_ID
  incident close INCIDENT_ID --summary S --blast-radius B --preventive-controls P   (final)
  alerts [--status open|acked]       list alerts;  alerts ack ALERT_ID [--note TEXT]
  audit [--limit N] [--before SEQ]   read the audit log;  audit --verify  check its hash chain
  preflight [options]                the release preflight (npm run preflight -- --help)

Environment:
  WAVRY_ADMIN_TOKEN_FILE   file holding the admin token (mode 0600)
  WAVRY_EDGE_URL           the edge origin`;

/** One command's help, keyed by command name. */
export const COMMAND_HELP = {
  init: `Usage: wavry init

Creates this device's identity (an X25519 and an Ed25519 key) in WAVRY_HOME with mode 0600 and prints
its device id and fingerprint. Refuses to replace an existing identity.`,
  login: `Usage: wavry login EMAIL [--totp CODE]

Signs in to the edge. The password is read from WAVRY_PASSWORD, or prompted for (not echoed) on a
terminal. The session is kept in WAVRY_HOME/session.json (mode 0600).

Options:
  --totp CODE   the current code of your authenticator app, if two-factor sign-in is on`,
  logout: `Usage: wavry logout

Revokes the session at the edge and deletes WAVRY_HOME/session.json.`,
  enroll: `Usage: wavry enroll [--name NAME]
       wavry enroll --code CODE [--name NAME]

Binds this device's public keys to your account: as the signed-in user (wavry login first), or with a
one-time enrollment code created on a signed-in machine (for headless hosts; no login needed).

Options:
  --code CODE   a one-time enrollment code (XXXX-XXXX-XXXX-XXXX-XXXX)
  --name NAME   the device name shown in listings (default: this machine's host name)`,
  devices: `Usage: wavry devices [--json]

Lists the signed-in user's devices with their fingerprints.

Options:
  --json        print the list as JSON`,
  trust: `Usage: wavry trust list
       wavry trust pin DEVICE_ID [--x25519 KEY --ed25519 KEY]
       wavry trust forget DEVICE_ID

The trust store (like SSH known_hosts): each peer's keys are pinned on first contact, and a peer that
later presents another key is refused. 'pin' pins a device ahead of time: with its base64url keys, or
by looking it up among your own devices at the edge. The device id must derive from the keys.
'forget' removes a pin (for example after a peer was reinstalled and you checked its new fingerprint).`,
  status: `Usage: wavry status

Shows the configuration, this device's id and fingerprint, the sign-in state, and whether the edge
accepts this device (a device token by challenge and signature).`,
  host: `Usage: wavry host [--source test|x11|clip] [--inject log|xdotool] [--relay-only]

Shares this machine with a connecting peer until stopped (Ctrl-C): waits for session offers on the edge's
signaling socket, checks the peer's key against the trust store, and streams video over the peer link
(direct, or through a relay when the client asks for one). One session at a time.

Options:
  --source KIND   test (default; an ffmpeg test pattern, or the shipped clip without ffmpeg), x11
                  (this X display, needs DISPLAY and ffmpeg with libx264) or clip (the shipped clip)
  --inject KIND   log (default; prints the kind of each input event, never keys or positions) or xdotool (X11, needs DISPLAY)
  --relay-only    publish no direct address (this machine's addresses stay private); sessions go through a relay`,
  connect: `Usage: wavry connect DEVICE_ID [--path direct|relay] [--record file:PATH] [--duration N] [--no-viewer]

Opens a session to a host device, checks its key against the trust store, and shows it in a local
viewer page (its URL, with an access token, is printed) and/or records it to a raw H.264 file.

Options:
  --path P          direct (default; the host's addresses, relay as fallback) or relay (only the relay)
  --record file:PATH  write the received video (Annex B H.264) to PATH
  --duration N      stop after N seconds; exit 0 only if the session was established and frames arrived
  --no-viewer       do not start the viewer page`,
  admin: ADMIN_HELP,
} as const;

/** A command name. */
export type CommandName = keyof typeof COMMAND_HELP;

/** True when `name` is a `wavry` command. */
export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(COMMAND_HELP, name);
}

/** `wavry --help`. */
export const MAIN_HELP = `wavry: encrypted remote sessions between your own machines.

Usage: wavry COMMAND [options]

Commands:
  init              create this device's identity and print its fingerprint
  login EMAIL       sign in to the edge
  logout            sign out
  enroll            bind this device to your account (--code CODE for headless hosts)
  devices           list your devices
  trust             list, pin or forget peers' keys
  status            show identity, sign-in and enrollment state
  host              share this machine
  connect DEVICE    connect to a host
  admin             incident response through the admin API (operators)

Run 'wavry COMMAND --help' for a command's options.

${ENVIRONMENT}`;
