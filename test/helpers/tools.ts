import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * An external tool the tests run: `$<envVar>` if set, else the first executable `name` on PATH or
 * in `dirs` (sbin for daemons such as mosquitto).
 */
export function findTool(
  name: string,
  envVar: string,
  dirs: readonly string[] = ['/usr/bin', '/bin'],
): string | undefined {
  const fromEnv = process.env[envVar];
  const candidates = fromEnv
    ? [fromEnv]
    : [...(process.env.PATH ?? '').split(delimiter), ...dirs].filter(Boolean).map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {}
  }
  return undefined;
}

/**
 * The policy for a tool CI must have: in CI (CI=true) a missing tool fails loudly, naming how to
 * install it; elsewhere this returns undefined and the caller skips with `missing` as the visible reason.
 */
export function requireTool(
  name: string,
  envVar: string,
  missing: string,
  options: { dirs?: readonly string[]; install?: string } = {},
): string | undefined {
  const bin = findTool(name, envVar, options.dirs);
  if (bin) return bin;
  if (process.env.CI === 'true') {
    const how = options.install ? ` (${options.install})` : '';
    throw new Error(`${missing}: CI must install it${how} — refusing to skip in CI`);
  }
  return undefined;
}
