import { isIP } from 'node:net';
import { HubError } from '../base/errors.js';

/** Where the metrics endpoint listens. */
export type MetricsListen = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/**
 * `metrics.listen` checked beyond the schema's pattern: an IP literal (a host name could resolve
 * to a public address) with a port 1–65535, or an absolute unix socket path. The endpoint has no
 * authentication, so an address outside loopback is refused unless `metrics.allowRemote` says the
 * operator chose to expose it (docs/operations.md, "Metrics").
 */
export function parseMetricsListen(listen: string, allowRemote: boolean): MetricsListen {
  if (listen.startsWith('/')) {
    if (listen.length > 107) {
      throw bad(listen, `the socket path is ${listen.length} bytes long; a unix socket path is at most 107`);
    }
    return { kind: 'unix', path: listen };
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(listen);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (
    !host ||
    isIP(host) === 0 ||
    (m?.[1] !== undefined && isIP(host) !== 6) ||
    (m?.[2] !== undefined && isIP(host) !== 4)
  ) {
    throw bad(listen, 'expected an IP address and a port (IPv6 in brackets), or an absolute unix socket path');
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(listen, `port ${m?.[3]} is not 1–65535`);
  if (!allowRemote && !isLoopback(host)) {
    throw new HubError(
      'config.metrics',
      `metrics.listen: ${listen} is not a loopback address; the metrics endpoint has no authentication`,
      {
        hint: 'listen on 127.0.0.1:9464 or a unix socket such as /run/iq-hub/metrics.sock and scrape through a tunnel or an authenticating proxy; set metrics.allowRemote: true only to expose it on purpose',
      },
    );
  }
  return { kind: 'tcp', host, port };
}

/** 127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.x.x.x). */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (isIP(h) === 4) return h.split('.')[0] === '127';
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h) ?? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped?.[1] !== undefined && isIP(mapped[1]) === 4 && mapped[1].split('.')[0] === '127';
}

function bad(listen: string, why: string): HubError {
  return new HubError('config.metrics', `metrics.listen: ${JSON.stringify(listen)}: ${why}`, {
    hint: 'e.g. metrics.listen: "127.0.0.1:9464", "[::1]:9464" or "/run/iq-hub/metrics.sock" (docs/configuration.md)',
  });
}
