import { describe, expect, it } from 'vitest';
import { type CommandsSource, registerCommandMethods } from '../../../src/app/control-methods.js';
import { HubError } from '../../../src/base/errors.js';
import type { ControlServer } from '../../../src/control-socket/socket-server.js';

type Handler = (p: Record<string, unknown>) => unknown;

/** The handler `commands.list` gets, without a socket. */
function commandsList(uplink: CommandsSource | undefined): Handler {
  let handler: Handler | undefined;
  const server = {
    register: (name: string, def: { handler: Handler }) => {
      if (name === 'commands.list') handler = def.handler;
    },
  } as unknown as ControlServer;
  registerCommandMethods(server, uplink);
  if (!handler) throw new Error('commands.list was not registered');
  return handler;
}

const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'returned';
  } catch (e) {
    return e instanceof HubError ? e.code : 'other';
  }
};

describe('iqhub commands on the control socket', () => {
  it('without an uplink, or before it is up, says so with a code (and what to do), not an empty list', () => {
    expect(codeOf(() => commandsList(undefined)({}))).toBe('commands.no-uplink');
    const starting = { commands: () => undefined } as unknown as CommandsSource;
    expect(codeOf(() => commandsList(starting)({}))).toBe('commands.not-ready');
  });

  it('passes the limit on (20 when not given) and returns the uplink view as it is', () => {
    const limits: number[] = [];
    const view = { stats: { accepted: 1, refused: {}, lockouts: 0, lockedOutUntil: null }, recent: [] };
    const up = {
      commands: (limit: number) => {
        limits.push(limit);
        return view;
      },
    } as unknown as CommandsSource;
    expect(commandsList(up)({})).toBe(view);
    expect(commandsList(up)({ limit: 3 })).toBe(view);
    expect(limits).toEqual([20, 3]);
  });
});
