import type { MtHandlers, ZnpContext } from './context.js';
import { findCommand, type MtFrame, MtType, type Params, readParams, Subsystem } from './mt.js';
import { AF_HANDLERS } from './mt-af.js';
import { APP_CNF_HANDLERS } from './mt-app-cnf.js';
import { SYS_HANDLERS } from './mt-sys.js';
import { UTIL_HANDLERS } from './mt-util.js';
import { ZDO_HANDLERS, zdoRequest } from './mt-zdo.js';

/**
 * Routes one MT request from the host to its subsystem's handler. What herdsman sends that the
 * emulator does not implement still gets an answer (a zero-filled success), because a real ZNP
 * answers every SREQ and herdsman would otherwise wait for its timeout; such requests are counted.
 */

const HANDLERS: Readonly<Partial<Record<Subsystem, MtHandlers>>> = {
  [Subsystem.SYS]: SYS_HANDLERS,
  [Subsystem.AF]: AF_HANDLERS,
  [Subsystem.ZDO]: ZDO_HANDLERS,
  [Subsystem.UTIL]: UTIL_HANDLERS,
  [Subsystem.APP_CNF]: APP_CNF_HANDLERS,
};

/** Handles one frame from the host; throws when its parameters do not parse (counted as malformed). */
export function dispatch(ctx: ZnpContext, frame: MtFrame): void {
  const command = findCommand(frame.subsystem, frame.command);
  if (!command || (frame.type !== MtType.SREQ && frame.type !== MtType.AREQ)) {
    ctx.counters.unknownCommands++;
    return;
  }
  if (frame.subsystem === Subsystem.ZDO && command.zdoClusterId !== undefined) {
    zdoRequest(ctx, command, frame.data);
    return;
  }
  const p = readParams(command.request ?? [], frame.data);
  const reply = (values: Params) => ctx.serial.srsp(command, frame.subsystem, values);
  const table = HANDLERS[frame.subsystem as Subsystem];
  const handler = table && Object.hasOwn(table, command.name) ? table[command.name] : undefined;
  if (handler) {
    handler({ ctx, p, data: frame.data, reply });
    return;
  }
  if (frame.type === MtType.SREQ) {
    ctx.counters.unknownCommands++;
    reply({ status: 0 });
  }
}
