import { readFileSync } from 'node:fs';
import { request } from 'node:http';

/** Every series docs/operations.md lists (the table under "Metrics"), read from the doc itself. */
export function documentedSeries(): string[] {
  const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Metrics (Prometheus)'), doc.indexOf('## Logs and the journal'));
  return [...section.matchAll(/^\| `(iqhub_[a-z_]+)` \|/gm)].map((m) => m[1] as string);
}

export function get(
  ep: { socketPath?: string; port?: number },
  path = '/metrics',
  method = 'GET',
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { ...(ep.socketPath ? { socketPath: ep.socketPath } : { host: '127.0.0.1', port: ep.port }), path, method },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line, e.g. `iqhub_commands_refused_total{code="expired"}`. */
export function sample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
