import { type MtHandlers, type MtRequest, powerUp, STATUS, type ZnpContext } from './context.js';
import { Subsystem } from './mt.js';
import { NvId, ZnpNv } from './nv.js';

/**
 * SYS subsystem: identity (ping, version, IEEE address), reset, and NV memory, both the legacy
 * items and the extended (sysid, itemid, subid) table that herdsman's backup reads. NV writes go
 * straight to ZnpNv, so a snapshot taken at any moment is what the dongle would hold.
 */

/** At most this much of an NV item per read, so that the answer fits one MT frame (MAX_DATA 250). */
const NV_READ_CHUNK = 240;
const NV_NOT_FOUND = 0x0a;

export const SYS_HANDLERS: MtHandlers = {
  ping: ({ reply }) => reply({ capabilities: 0x0159 }),
  version: ({ reply }) =>
    reply({ transportrev: 2, product: 1, majorrel: 2, minorrel: 7, maintrel: 1, revision: 20230507 }),
  getExtAddr: ({ ctx, reply }) => reply({ extaddress: ctx.nv.ieee }),
  resetReq: ({ ctx }) => reset(ctx),
  osalNvLength: ({ ctx, p, reply }) => reply({ length: ctx.nv.items.get(Number(p.id))?.length ?? 0 }),
  osalNvRead: ({ ctx, p, reply }) => readItem(ctx, p.id, p.offset, reply),
  osalNvReadExt: ({ ctx, p, reply }) => readItem(ctx, p.id, p.offset, reply),
  osalNvItemInit: ({ ctx, p, reply }) => {
    if (ctx.nv.items.has(Number(p.id))) return reply({ status: 0 });
    const item = Buffer.alloc(Number(p.len));
    (p.initvalue as Buffer).copy(item);
    ctx.nv.items.set(Number(p.id), item);
    reply({ status: STATUS.NV_ITEM_INITIALIZED });
  },
  osalNvWrite: ({ ctx, p, reply }) => writeItem(ctx, p.id, p.offset, p.value, reply),
  osalNvWriteExt: ({ ctx, p, reply }) => writeItem(ctx, p.id, p.offset, p.value, reply),
  osalNvDelete: ({ ctx, p, reply }) => {
    ctx.nv.items.delete(Number(p.id));
    reply({ status: 0 });
  },
  nvLength: ({ ctx, p, reply }) => reply({ len: ctx.nv.extended.get(extKey(p))?.length ?? 0 }),
  nvRead: ({ ctx, p, reply }) => {
    const entry = ctx.nv.extended.get(extKey(p));
    if (!entry) return reply({ status: NV_NOT_FOUND, len: 0, value: Buffer.alloc(0) });
    const value = entry.subarray(Number(p.offset), Number(p.offset) + Number(p.len));
    reply({ status: 0, len: value.length, value });
  },
  nvCreate: ({ ctx, p, reply }) => {
    const k = extKey(p);
    if (!ctx.nv.extended.has(k)) ctx.nv.extended.set(k, Buffer.alloc(Number(p.len)));
    reply({ status: 0 });
  },
  nvWrite: ({ ctx, p, reply }) => {
    const k = extKey(p);
    ctx.nv.extended.set(k, overwrite(ctx.nv.extended.get(k), Number(p.offset), p.value as Buffer));
    reply({ status: 0 });
  },
  nvDelete: ({ ctx, p, reply }) => {
    ctx.nv.extended.delete(extKey(p));
    reply({ status: 0 });
  },
  stackTune: ({ reply }) => reply({ value: 0 }),
};

type Reply = MtRequest['reply'];

function readItem(ctx: ZnpContext, id: unknown, offset: unknown, reply: Reply): void {
  const item = ctx.nv.items.get(Number(id));
  const value = item?.subarray(Number(offset), Number(offset) + NV_READ_CHUNK);
  reply(value ? { status: 0, len: value.length, value } : { status: NV_NOT_FOUND, len: 0, value: Buffer.alloc(0) });
}

function writeItem(ctx: ZnpContext, id: unknown, offset: unknown, value: unknown, reply: Reply): void {
  ctx.nv.items.set(Number(id), overwrite(ctx.nv.items.get(Number(id)), Number(offset), value as Buffer));
  reply({ status: 0 });
}

/** `value` written at `offset`, the item growing if it must (as Z-Stack's NV write does). */
function overwrite(item: Buffer | undefined, offset: number, value: Buffer): Buffer {
  const before = item ?? Buffer.alloc(0);
  const next = Buffer.alloc(Math.max(before.length, offset + value.length));
  before.copy(next);
  value.copy(next, offset);
  return next;
}

function extKey(p: Record<string, unknown>): string {
  return ZnpNv.extKey(Number(p.sysid), Number(p.itemid), Number(p.subid));
}

/** SYS resetReq: STARTUP_OPTION bit 1 clears the network; RAM is lost; resetInd follows. */
function reset(ctx: ZnpContext): void {
  const startup = ctx.nv.items.get(NvId.STARTUP_OPTION)?.[0] ?? 0;
  if (startup & 0x02) ctx.nv.clearNetwork();
  powerUp(ctx.ram);
  ctx.later(10, () =>
    ctx.serial.areq(Subsystem.SYS, 'resetInd', {
      reason: 0,
      transportrev: 2,
      productid: 1,
      majorrel: 2,
      minorrel: 7,
      hwrev: 1,
    }),
  );
}
