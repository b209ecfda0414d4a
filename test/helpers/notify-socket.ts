import { createRequire } from 'node:module';

interface DgramSocket {
  bind(path: string): void;
  on(event: 'message', cb: (msg: Buffer) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  close(): void;
}

export interface Notification {
  at: number;
  lines: string[];
}

/** A fake systemd NOTIFY_SOCKET: records every datagram with the time it arrived. */
export class FakeNotifySocket {
  readonly messages: Notification[] = [];
  readonly #socket: DgramSocket;

  constructor(readonly path: string) {
    const require = createRequire(import.meta.url);
    const { createSocket } = require('unix-dgram') as { createSocket(t: 'unix_dgram'): DgramSocket };
    this.#socket = createSocket('unix_dgram');
    this.#socket.on('message', (msg) =>
      this.messages.push({ at: performance.now(), lines: msg.toString().split('\n') }),
    );
    this.#socket.on('error', () => {});
    this.#socket.bind(path);
  }

  has(line: string): boolean {
    return this.messages.some((m) => m.lines.includes(line));
  }

  count(line: string, since = 0): number {
    return this.messages.filter((m) => m.at >= since && m.lines.includes(line)).length;
  }

  async waitFor(line: string, timeoutMs = 10_000): Promise<Notification> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const m = this.messages.find((x) => x.lines.includes(line));
      if (m) return m;
      if (performance.now() > end)
        throw new Error(`no ${line} within ${timeoutMs} ms; got ${JSON.stringify(this.messages.map((x) => x.lines))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.#socket.close();
  }
}
