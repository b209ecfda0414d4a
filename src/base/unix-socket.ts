import { createConnection } from 'node:net';

/**
 * Whether something answers on the unix socket at `path`: a socket file left by a killed daemon
 * does not (its caller may remove it); one that answers belongs to a running process.
 */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
