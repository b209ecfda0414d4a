import { createConnection } from 'node:net';
import type { HubError, HubErrorCode } from '../base/errors.js';
import { type ControlError, type ControlResponse, MAX_LINE_BYTES } from '../contract/control-socket.js';

/**
 * One request to a running daemon. Throws HubError with the daemon's code (daemon.unknown-error for
 * one this iqhub does not know), or daemon.not-running.
 */
export async function callDaemon(
  socketPath: string,
  method: string,
  params: Record<string, unknown> = {},
  timeoutMs = 10_000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    // Over once answered, refused or timed out: the socket's close that follows then says nothing.
    let over = false;
    const fail = (e: Promise<HubError>) => {
      over = true;
      void e.then(reject, reject);
    };
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      fail(
        hubError('daemon.timeout', `the daemon did not answer ${method} within ${timeoutMs / 1000} s`, {
          hint: 'check `journalctl -u iq-hub`',
        }),
      );
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 16 * MAX_LINE_BYTES) {
        socket.destroy();
        clearTimeout(timer);
        fail(hubError('daemon.bad-reply', 'the daemon sent an oversized reply'));
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      over = true;
      clearTimeout(timer);
      // One request, one reply line: the call is over. Closing at once, rather than waiting for
      // the daemon's end of the connection, lets a one-shot CLI call exit a turn sooner.
      socket.destroy();
      let res: ControlResponse;
      try {
        res = JSON.parse(buf.slice(0, nl)) as ControlResponse;
      } catch {
        fail(hubError('daemon.bad-reply', 'the daemon sent a reply that is not JSON'));
        return;
      }
      if (res.ok) resolve(res.result);
      else fail(fromReply(res.error));
    });
    // The daemon ended the connection without a whole answer (it stopped or crashed mid-call): say
    // so now rather than after the whole timeout.
    socket.once('close', () => {
      if (over) return;
      clearTimeout(timer);
      fail(hubError('daemon.bad-reply', `the daemon closed the connection before answering ${method}`));
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        fail(
          hubError('daemon.not-running', `the iq-hub daemon is not running (nothing answers on ${socketPath})`, {
            hint: 'start it with `systemctl start iq-hub` (or `iqhub run --config FILE`); to try it out, `npm start` runs a demo',
          }),
        );
      } else if (e.code === 'EACCES') {
        fail(
          hubError('daemon.forbidden', `not allowed to use ${socketPath}`, {
            hint: 'run as a member of the iqhub group, or with sudo',
          }),
        );
      } else {
        fail(hubError('daemon.unreachable', `cannot reach the daemon on ${socketPath}: ${e.code ?? e.message}`));
      }
    });
  });
}

/**
 * A HubError, its module (and the table of every error code's hint) loaded only when a call fails:
 * a call that succeeds — the CLI's everyday `iqhub status` — loads neither (docs/operations.md,
 * "A light command line").
 */
async function hubError(code: HubErrorCode, message: string, options?: { hint?: string }): Promise<HubError> {
  const { HubError } = await import('../base/errors.js');
  return new HubError(code, message, options);
}

/**
 * The daemon's error as a HubError. A code this iqhub does not know (a daemon of another version)
 * keeps its code and message in the message, under a code of its own, rather than passing for one
 * of ours.
 */
async function fromReply(error: ControlError): Promise<HubError> {
  const { isHubErrorCode } = await import('../base/errors.js');
  const hint = error.hint ? { hint: error.hint } : {};
  if (isHubErrorCode(error.code)) return hubError(error.code, error.message, hint);
  return hubError('daemon.unknown-error', `the daemon answered ${error.code}: ${error.message}`, hint);
}
