import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pkiPaths, validateIdentity } from '../../provisioning/dev-pki.js';
import { findTool, requireTool } from './tools.js';

const MOSQUITTO_DIRS = ['/usr/sbin', '/usr/local/sbin'];

/**
 * A real mosquitto (2.x) for integration tests: mutual TLS with the dev PKI, the client
 * certificate's CN as user name, and the per-hub ACL `pattern readwrite ks/hubs/%u/#`
 * (cloud identities: `ks/hubs/#` and `ks/provisioning/#`; claim identities: their own
 * provisioning request and response topics and nothing else). Listens on a free loopback port;
 * can be stopped, killed and started again on the same port for outage tests.
 */
export interface Mosquitto {
  port: number;
  url: string;
  /** The temporary directory with the config, ACL and the broker's copies of its cert and key. */
  dir: string;
  /** Start again on the same port (after stop or kill); no-op when running. */
  start(): Promise<void>;
  /** SIGTERM, wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL, wait for exit. */
  kill(): Promise<void>;
  /** SIGSTOP: a broker that keeps its connections open and answers nothing (until resume()). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Stop and remove the temporary directory. */
  close(): Promise<void>;
  /** The broker's recent log output, for failure messages. */
  log(): string;
  /**
   * Rewrite the ACL's denied hub topics (as `denyHubTopics`); it takes effect at the next start()
   * (stop() first: a broker restarted with the fixed ACL).
   */
  setDenyHubTopics(topics: string[]): void;
}

export const MOSQUITTO_MISSING =
  'mosquitto is not installed (apt-get install mosquitto); the real-broker tests are skipped here and run in CI';

/** The mosquitto binary: $MOSQUITTO_BIN, else PATH, /usr/sbin, /usr/local/sbin. */
export function findMosquitto(): string | undefined {
  return findTool('mosquitto', 'MOSQUITTO_BIN', MOSQUITTO_DIRS);
}

/**
 * The policy when mosquitto is missing: in CI (CI=true) fail loudly; elsewhere return undefined
 * and the caller skips with `MOSQUITTO_MISSING` as the visible reason.
 */
export function requireMosquitto(): string | undefined {
  return requireTool('mosquitto', 'MOSQUITTO_BIN', MOSQUITTO_MISSING, {
    dirs: MOSQUITTO_DIRS,
    install: 'apt-get install -y mosquitto',
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('could not pick a free port');
  return address.port;
}

/** uid/gid of the `mosquitto` account, if it exists (mosquitto switches to it when started as root). */
function mosquittoAccount(): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('mosquitto:'));
    const [, , uid, gid] = line?.split(':') ?? [];
    return uid && gid ? { uid: Number(uid), gid: Number(gid) } : undefined;
  } catch {
    return undefined;
  }
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startMosquitto(opts: {
  pkiDir: string;
  cloudIds?: string[];
  /** Keep sessions and queued messages across stop()/start() (saved on a clean stop), as a production broker would. */
  persistence?: boolean;
  /**
   * CNs of claim certificates (enrollment by claim): each may publish `ks/provisioning/{id}/request`
   * and read `ks/provisioning/{id}/response`, and nothing else. The hub pattern would also give
   * them `ks/hubs/{id}/#` (patterns apply to every user): an explicit `deny` takes that away.
   */
  claimIds?: string[];
  /**
   * The client id is the certificate's CN, whatever the client asks (`use_username_as_clientid`):
   * no certificate can take over another identity's session. Off by default: two clients with the
   * same certificate (two reference clouds) would then take over each other's session.
   */
  clientIdFromCertificate?: boolean;
  /** More mosquitto.conf lines (e.g. `max_queued_messages 0` for a large backlog). */
  extra?: string[];
  /**
   * Hub topics (relative to `ks/hubs/{CN}/`, e.g. `events`) the ACL denies every hub, as a
   * misconfigured production broker might: mosquitto acknowledges and drops a denied publish over
   * MQTT 3.1.1, and answers PUBACK 0x87 (not authorized) over MQTT 5. Deny lines win over grants.
   */
  denyHubTopics?: string[];
}): Promise<Mosquitto | undefined> {
  const bin = requireMosquitto();
  if (!bin) return undefined;
  const cloudIds = opts.cloudIds ?? ['cloud'];
  for (const id of cloudIds) validateIdentity(id, 'cloud id'); // it goes into the ACL file
  const claimIds = opts.claimIds ?? [];
  for (const id of claimIds) validateIdentity(id, 'claim id');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'iqhub-mosquitto-'));
  const pki = pkiPaths(opts.pkiDir);
  const files = { ca: join(dir, 'ca.crt'), cert: join(dir, 'broker.crt'), key: join(dir, 'broker.key') };
  copyFileSync(pki.ca.cert, files.ca);
  copyFileSync(pki.broker.cert, files.cert);
  copyFileSync(pki.broker.key, files.key);
  const aclPath = join(dir, 'acl');
  const aclLines = (deny: string[]) => [
    ...deny.map((t) => {
      if (!/^[A-Za-z0-9._/-]+$/.test(t)) throw new Error(`startMosquitto: bad hub topic to deny: ${t}`);
      return `pattern deny ks/hubs/%u/${t}`;
    }),
    'pattern readwrite ks/hubs/%u/#',
    ...cloudIds.flatMap((id) => ['', `user ${id}`, 'topic readwrite ks/hubs/#', 'topic readwrite ks/provisioning/#']),
    ...claimIds.flatMap((id) => [
      '',
      `user ${id}`,
      'topic deny ks/hubs/#',
      `topic write ks/provisioning/${id}/request`,
      `topic read ks/provisioning/${id}/response`,
    ]),
  ];
  writeFileSync(aclPath, `${aclLines(opts.denyHubTopics ?? []).join('\n')}\n`, { mode: 0o600 });

  // Started as root, mosquitto drops to the `mosquitto` account before it reads the key and the
  // ACL: hand it this directory. Without that account, stay root (it would fall back to `nobody`,
  // who could not read the key). As any other user it runs as that user and `user` is ignored.
  let user: string | undefined;
  if (process.getuid?.() === 0) {
    const account = mosquittoAccount();
    if (account) {
      for (const p of [dir, files.ca, files.cert, files.key, join(dir, 'acl')]) chownSync(p, account.uid, account.gid);
      user = 'mosquitto';
    } else {
      user = 'root';
    }
  }
  const conf = [
    'per_listener_settings false',
    'allow_anonymous false',
    `acl_file ${join(dir, 'acl')}`,
    ...(opts.persistence ? ['persistence true', `persistence_location ${dir}/`] : ['persistence false']),
    'set_tcp_nodelay true',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    ...(user ? [`user ${user}`] : []),
    `listener ${port} 127.0.0.1`,
    `cafile ${files.ca}`,
    `certfile ${files.cert}`,
    `keyfile ${files.key}`,
    'tls_version tlsv1.2',
    'require_certificate true',
    'use_identity_as_username true',
    ...(opts.clientIdFromCertificate ? ['use_username_as_clientid true'] : []),
    ...(opts.extra ?? []),
  ];
  const confPath = join(dir, 'mosquitto.conf');
  writeFileSync(confPath, `${conf.join('\n')}\n`, { mode: 0o644 });

  let output = '';
  let child: ChildProcess | undefined;
  const exited = (c: ChildProcess) =>
    new Promise<void>((resolve) =>
      c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve()),
    );

  async function start(): Promise<void> {
    if (child) return;
    const c = spawn(bin as string, ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let fresh = ''; // this run's output until it is ready
    let ready = false;
    const collect = (b: Buffer) => {
      const text = b.toString('utf8');
      output = (output + text).slice(-16_384);
      if (!ready) {
        fresh += text;
        // It says so once it has bound the port. (Probing the port instead would accept another
        // process's listener, and leaves a failed TLS handshake in the log.)
        ready = /mosquitto version \S+ running/.test(fresh);
      }
    };
    c.once('error', (e) => collect(Buffer.from(`spawn ${bin}: ${e.message}\n`)));
    c.stdout?.on('data', collect);
    c.stderr?.on('data', collect);
    live.add(c);
    c.once('exit', () => {
      live.delete(c);
      if (child === c) child = undefined;
    });
    child = c;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) break;
      if (ready) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    c.kill('SIGKILL');
    await exited(c);
    throw new Error(`mosquitto did not start on 127.0.0.1:${port} (config ${confPath}). Its output:\n${output}`);
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    const c = child;
    if (!c) return;
    c.kill(sig);
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await exited(c);
    clearTimeout(timer);
  }

  await start();
  return {
    port,
    url: `mqtts://127.0.0.1:${port}`,
    dir,
    start,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async close() {
      child?.kill('SIGCONT');
      await signal('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => output,
    setDenyHubTopics(topics: string[]) {
      // Rewritten in place: the file keeps its owner (the mosquitto account when run as root).
      writeFileSync(aclPath, `${aclLines(topics).join('\n')}\n`);
    },
  };
}
