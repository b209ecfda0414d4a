import { createRequire } from 'node:module';
import type { Clock, TimerHandle } from '../base/clock.js';

/**
 * The systemd notify protocol (sd_notify(3)): datagrams such as "READY=1" to the Unix socket
 * named by NOTIFY_SOCKET. Node has no Unix datagram sockets, so the small `unix-dgram` addon
 * (the one Zigbee2MQTT uses) carries them; it is loaded only when NOTIFY_SOCKET is set.
 */
export interface Notifier {
  readonly enabled: boolean;
  notify(...lines: string[]): void;
  close(): void;
}

interface DgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, cb?: (err?: Error) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  close(): void;
}

const disabled: Notifier = { enabled: false, notify() {}, close() {} };

export function createNotifier(env: NodeJS.ProcessEnv, onError: (e: Error) => void = () => {}): Notifier {
  const target = env.NOTIFY_SOCKET;
  if (!target) return disabled;
  // An abstract-namespace socket is named with a leading "@"; on the wire it starts with NUL.
  const path = target.startsWith('@') ? `\0${target.slice(1)}` : target;
  const require = createRequire(import.meta.url);
  const { createSocket } = require('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };
  const socket = createSocket('unix_dgram');
  socket.on('error', onError);
  let open = true;
  return {
    enabled: true,
    notify(...lines: string[]) {
      if (!open) return;
      const buf = Buffer.from(lines.join('\n'));
      socket.send(buf, 0, buf.length, path, (err) => {
        if (err) onError(err);
      });
    },
    close() {
      if (!open) return;
      open = false;
      socket.close();
    },
  };
}

/**
 * Watchdog interval from WATCHDOG_USEC (and WATCHDOG_PID, which must be ours if set): half the
 * configured timeout, as sd_watchdog_enabled(3) advises. Undefined when no watchdog is asked for.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

/**
 * Send WATCHDOG=1 from a timer on the event loop: if the loop is blocked, the pings stop and
 * systemd restarts the service. The ping is deliberately not sent from a worker or a native
 * thread, which would keep beating while the daemon is stuck.
 */
export function startWatchdog(notifier: Notifier, intervalMs: number, clock: Clock): { stop(): void } {
  let timer: TimerHandle | undefined;
  let stopped = false;
  const beat = () => {
    if (stopped) return;
    notifier.notify('WATCHDOG=1');
    timer = clock.setTimeout(beat, intervalMs);
  };
  beat();
  return {
    stop() {
      stopped = true;
      clock.clearTimeout(timer);
    },
  };
}
