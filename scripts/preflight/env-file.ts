/**
 * Reads an environment file as operators deploy them (systemd `EnvironmentFile=`, `docker --env-file`):
 * `KEY=VALUE` a line, `#` and `;` comments, blank lines, optional matching quotes around the value, an optional
 * leading `export `. A line that is none of these is reported rather than skipped, so a typo cannot hide a setting.
 */

export interface EnvFile {
  readonly vars: Readonly<Record<string, string>>;
  /** Lines that could not be read, as `line N: why` (never the line's value). */
  readonly problems: readonly string[];
}

const LINE = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/;

/** Parses the text of an environment file. A repeated key keeps its last value, as systemd does. */
export function parseEnvFile(text: string): EnvFile {
  const vars: Record<string, string> = {};
  const problems: string[] = [];
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const match = LINE.exec(line);
    const key = match?.[1];
    const rawValue = match?.[2];
    if (key === undefined || rawValue === undefined) {
      problems.push(`line ${index + 1}: not KEY=VALUE`);
      continue;
    }
    vars[key] = unquote(rawValue.trim());
  }
  return { vars, problems };
}

function unquote(value: string): string {
  const first = value[0];
  if (value.length >= 2 && (first === '"' || first === "'") && value.endsWith(first))
    return value.slice(1, -1);
  return value;
}
