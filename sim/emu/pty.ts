import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { HubError } from '../../src/base/errors.js';

/**
 * A serial port made of a pseudo-terminal whose other end is a TCP connection to an emulator:
 * `socat pty,raw,echo=0,link=<path> tcp:127.0.0.1:<port>`. To the driver under test `<path>` is
 * a UART like any other; the emulator is a plain node:net server.
 *
 * unplug() kills socat: the PTY disappears, the driver's port errors and closes, as when a USB
 * dongle is pulled. plug() starts socat again on the same path.
 */
export interface PtyBridgeOptions {
  /** The socat binary (see test/helpers/socat.ts requireSocat). */
  readonly socat: string;
  /** Where the serial port appears (a symlink to the /dev/pts/N slave). */
  readonly path: string;
  /** The emulator's TCP port on 127.0.0.1. */
  readonly port: number;
  /** How long to wait for the link to appear, ms. */
  readonly startTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class PtyBridge {
  readonly path: string;
  readonly #options: PtyBridgeOptions;
  #child: ChildProcess | undefined;
  #output = '';

  private constructor(options: PtyBridgeOptions) {
    this.#options = options;
    this.path = options.path;
  }

  /** Starts socat and waits until the serial port exists. */
  static async open(options: PtyBridgeOptions): Promise<PtyBridge> {
    const bridge = new PtyBridge(options);
    await bridge.plug();
    return bridge;
  }

  get plugged(): boolean {
    return this.#child !== undefined;
  }

  /** socat's recent output, for failure messages. */
  log(): string {
    return this.#output;
  }

  /** Starts socat (no-op while it runs) and waits for the PTY link. */
  async plug(): Promise<void> {
    if (this.#child) return;
    removeStaleLink(this.path);
    const child = spawn(
      this.#options.socat,
      ['-d', '-d', `pty,raw,echo=0,link=${this.path}`, `tcp:127.0.0.1:${this.#options.port}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let fresh = ''; // this run's output until the bridge is up
    child.stderr?.on('data', (b: Buffer) => {
      const text = b.toString('utf8');
      this.#output = (this.#output + text).slice(-8_192);
      if (fresh.length < 8_192) fresh += text;
    });
    child.once('error', (e) => {
      this.#output += `spawn ${this.#options.socat}: ${e.message}\n`;
    });
    live.add(child);
    child.once('exit', () => {
      live.delete(child);
      if (this.#child === child) this.#child = undefined;
    });
    this.#child = child;
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 5_000);
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      // socat reports the data loop once both ends are open: the TCP connection is up too.
      if (existsSync(this.path) && fresh.includes('starting data transfer loop')) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    await this.unplug();
    throw new HubError('pty.start', `socat did not create ${this.path} (bridge to 127.0.0.1:${this.#options.port})`, {
      hint: `socat said:\n${this.#output}`,
    });
  }

  /** Kills socat and waits for it: the serial port disappears. */
  async unplug(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await exited;
      clearTimeout(timer);
    }
    removeStaleLink(this.path);
  }

  async close(): Promise<void> {
    await this.unplug();
  }
}

/** A link left by a socat that died by SIGKILL points nowhere; socat would refuse to replace it. */
function removeStaleLink(path: string): void {
  try {
    if (lstatSync(path).isSymbolicLink()) unlinkSync(path);
  } catch {}
}
