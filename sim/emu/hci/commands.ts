import type { LinkLayer } from './links.js';
import { ACL_BUFFER_SIZE, ACL_BUFFERS, commandComplete, commandStatus, macBytes, OP, STATUS } from './packets.js';

/**
 * The HCI commands noble sends, answered as a plain LE controller answers them: start-up queries
 * with fixed capabilities (HCI 5.0, no extended advertising, no data length extension: the legacy
 * paths noble knows best), scanning, and the connection commands, which the link layer carries out.
 * Anything else is "Unknown HCI Command", so a new command noble starts sending shows up at once.
 */

export interface CommandContext {
  /** The controller's BD_ADDR. */
  readonly address: string;
  readonly links: LinkLayer;
  readonly counters: { commands: number; unknownCommands: number };
  send(bytes: Buffer): void;
  /** HCI Reset: scanning stops and every link is lost. */
  reset(): void;
  scan(enabled: boolean): void;
}

export function handleCommand(ctx: CommandContext, opcode: number, params: Buffer): void {
  ctx.counters.commands++;
  const complete = (status: number, result?: Buffer) => ctx.send(commandComplete(opcode, status, result));
  switch (opcode) {
    case OP.reset:
      ctx.reset();
      complete(STATUS.ok);
      return;
    case OP.setEventMask:
    case OP.leSetEventMask:
    case OP.writeLeHostSupported:
    case OP.leSetScanParameters:
      complete(STATUS.ok);
      return;
    case OP.leReadFeatures:
      complete(STATUS.ok, Buffer.alloc(8));
      return;
    case OP.readLocalVersion: {
      const r = Buffer.alloc(8);
      r[0] = 0x09; // HCI 5.0 (noble wants >= 6)
      r.writeUInt16LE(0x0001, 1);
      r[3] = 0x09;
      r.writeUInt16LE(0xffff, 4); // manufacturer: none
      r.writeUInt16LE(0x0001, 6);
      complete(STATUS.ok, r);
      return;
    }
    case OP.readLocalCommands:
      complete(STATUS.ok, Buffer.alloc(64));
      return;
    case OP.readLeHostSupported:
      complete(STATUS.ok, Buffer.from([0x01, 0x00]));
      return;
    case OP.leReadBufferSize: {
      const r = Buffer.alloc(3);
      r.writeUInt16LE(ACL_BUFFER_SIZE, 0);
      r[2] = ACL_BUFFERS;
      complete(STATUS.ok, r);
      return;
    }
    case OP.readBufferSize: {
      const r = Buffer.alloc(7);
      r.writeUInt16LE(ACL_BUFFER_SIZE, 0);
      r.writeUInt16LE(ACL_BUFFERS, 3);
      complete(STATUS.ok, r);
      return;
    }
    case OP.readBdAddr:
      complete(STATUS.ok, macBytes(ctx.address));
      return;
    case OP.leSetScanEnable:
      ctx.scan(params[0] === 0x01);
      complete(STATUS.ok);
      return;
    case OP.leCreateConn:
      ctx.links.create(params);
      return;
    case OP.leCreateConnCancel:
      ctx.links.cancel();
      return;
    case OP.disconnect:
      ctx.links.hostDisconnect(params);
      return;
    case OP.leConnUpdate:
      ctx.send(commandStatus(opcode, STATUS.ok));
      return;
    case OP.readRssi: {
      const handle = params.length >= 2 ? params.readUInt16LE(0) : 0;
      const c = ctx.links.get(handle);
      const r = Buffer.alloc(3);
      r.writeUInt16LE(handle, 0);
      r.writeInt8(c?.peripheral.options.rssi ?? -60, 2);
      complete(c ? STATUS.ok : STATUS.unknownConnection, r);
      return;
    }
    default:
      ctx.counters.unknownCommands++;
      complete(STATUS.unknownCommand);
  }
}
