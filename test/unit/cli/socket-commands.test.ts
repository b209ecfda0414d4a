import { describe, expect, it, vi } from 'vitest';
import { actions } from '../../../src/cli/socket-commands.js';

vi.mock('../../../src/control-socket/socket-client.js', () => ({
  callDaemon: vi.fn(async () => {
    throw new Error('the daemon must not be called');
  }),
}));

describe('the socket commands refuse an empty --socket (e.g. `--socket "$SOCK"` with SOCK unset)', () => {
  it.each([
    ['status', () => actions.status({ socket: '' })],
    ['locks', () => actions.locks({ socket: '', json: true })],
    ['open', () => actions.open('L1', { socket: '', duration: 5 })],
    ['forget --force', () => actions.forget('L1', { socket: '', force: true })],
    // diag too, before it reads the config or runs a local check.
    ['diag', () => actions.diag({ socket: '' })],
  ])(
    '%s: a clear error, no call to any daemon (not the config socket, which may be another daemon)',
    async (_, run) => {
      await expect(run()).rejects.toMatchObject({
        code: 'cli.socket-path',
        message: '--socket was given an empty path',
        hint: expect.stringContaining('leave --socket out'),
      });
    },
  );
});
