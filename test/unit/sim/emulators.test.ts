import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { fragmentFrame as bleFragments } from '../../../drivers/ble/gatt-frames.js';
import type { PeripheralLink } from '../../../drivers/sim-radio/radio.js';
import {
  encodeZcl,
  LINK_CLUSTER_ID,
  LinkCommand,
  MANUFACTURER_CODE,
  fragmentFrame as zigbeeFragments,
} from '../../../drivers/zigbee/link-cluster.js';
import { HciEmulator } from '../../../sim/emu/hci/controller.js';
import { ZnpEmulator } from '../../../sim/emu/znp/emulator.js';
import {
  commandByName,
  encodeFrame,
  findCommand,
  type MtCommand,
  type MtFrame,
  MtParser,
  MtType,
  type Params,
  readParams,
  Subsystem,
  writeParams,
} from '../../../sim/emu/znp/mt.js';
import { NvExt, NvId, ZnpNv } from '../../../sim/emu/znp/nv.js';
import { copyPersisted, factoryState, type LockPersisted } from '../../../sim/lock/storage.js';
import { SeededRandom } from '../../../src/base/random.js';
import { eventually } from '../../helpers/radio-rig.js';

/**
 * The emulators' wire as the host sees it, after the per-frame work was cut (sim/README.md
 * "Fast emulators"): the same frames in the same order, what answers one read leaving in one write,
 * and the codec and NV shortcuts giving the same bytes as the code they replaced.
 */

const require = createRequire(import.meta.url);
const definition = (
  require('zigbee-herdsman/dist/adapter/z-stack/znp/definition.js') as { default: Record<number, MtCommand[]> }
).default;

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** The field-by-field parameter writer the emulator had before (one buffer per field, then concat). */
function referenceWriteParams(parameters: readonly { name: string; parameterType: number }[], values: Params): Buffer {
  const fixed: Record<number, number> = { 5: 8, 6: 16, 7: 18, 8: 32, 9: 42, 10: 100 };
  const parts: Buffer[] = [];
  for (const p of parameters) {
    const v = values[p.name];
    switch (p.parameterType) {
      case 0:
      case 18: {
        const b = Buffer.alloc(1);
        b.writeUInt8(Number(v ?? 0) & 0xff);
        parts.push(b);
        break;
      }
      case 1: {
        const b = Buffer.alloc(2);
        b.writeUInt16LE(Number(v ?? 0) & 0xffff);
        parts.push(b);
        break;
      }
      case 2: {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(Number(v ?? 0) >>> 0);
        parts.push(b);
        break;
      }
      case 3:
        parts.push(Buffer.from((typeof v === 'string' ? v : '0x0000000000000000').slice(2), 'hex').reverse());
        break;
      case 12: {
        const list = (v as readonly number[] | undefined) ?? [];
        const b = Buffer.alloc(2 * list.length);
        list.forEach((n, i) => {
          b.writeUInt16LE(n, 2 * i);
        });
        parts.push(b);
        break;
      }
      default: {
        const size = fixed[p.parameterType];
        const b = Buffer.isBuffer(v) ? v : Buffer.from((v as readonly number[] | undefined) ?? []);
        parts.push(size === undefined ? b : Buffer.concat([b, Buffer.alloc(Math.max(0, size - b.length))], size));
      }
    }
  }
  return Buffer.concat(parts);
}

function randomValue(random: SeededRandom, type: number): Params[string] | undefined {
  if (random.int(8) === 0) return undefined; // a missing value: 0 or empty
  switch (type) {
    case 0:
    case 18:
      return random.int(0x1ff);
    case 1:
      return random.int(0x1ffff);
    case 2:
      return random.int(0xffffffff);
    case 3:
      return `0x${Buffer.from(random.bytes(8)).toString('hex')}`;
    case 12:
      return Array.from({ length: random.int(6) }, () => random.int(0x10000));
    default:
      // Shorter and longer than the fixed sizes, as a Buffer or as a list of bytes.
      return random.int(2) === 0
        ? Buffer.from(random.bytes(random.int(120)))
        : Array.from(random.bytes(random.int(40)));
  }
}

describe('the ZNP emulator codec', () => {
  test('writeParams gives the bytes of the field-by-field writer, for every parameter list herdsman defines', () => {
    const random = new SeededRandom('znp-write-params');
    let lists = 0;
    for (const commands of Object.values(definition)) {
      for (const command of commands) {
        for (const parameters of [command.request, command.response]) {
          if (!parameters) continue;
          lists++;
          for (let round = 0; round < 20; round++) {
            const values: Params = {};
            for (const p of parameters) {
              const v = randomValue(random, p.parameterType);
              if (v !== undefined) values[p.name] = v;
            }
            expect(writeParams(parameters, values).equals(referenceWriteParams(parameters, values))).toBe(true);
          }
        }
      }
    }
    expect(lists).toBeGreaterThan(100);
  });

  test('what writeParams writes, readParams reads back', () => {
    const { request } = commandByName(Subsystem.AF, 'incomingMsg');
    const data = Buffer.from([1, 2, 3, 4, 5]);
    const values = { clusterid: LINK_CLUSTER_ID, srcaddr: 0x1234, timestamp: 0xdeadbeef, len: data.length, data };
    expect(readParams(request ?? [], writeParams(request ?? [], values))).toMatchObject(values);
  });

  test('commands are found by id and by name as a search of herdsman’s definition finds them', () => {
    for (const [subsystem, commands] of Object.entries(definition)) {
      const s = Number(subsystem);
      for (let id = 0; id < 256; id++) {
        expect(findCommand(s, id)).toBe(commands.find((c) => c.ID === id && c.type !== MtType.SRSP));
      }
      for (const c of commands) expect(commandByName(s, c.name)).toBe(commands.find((x) => x.name === c.name));
    }
    expect(findCommand(99, 1)).toBeUndefined();
    expect(() => commandByName(Subsystem.SYS, 'noSuchCommand')).toThrow(/no command noSuchCommand/);
  });

  test('the parser keeps an unfinished frame across reads, and its frames do not share the bytes it was fed', () => {
    const ping = encodeFrame({ type: MtType.AREQ, subsystem: 4, command: 0x80, data: Buffer.from([7, 8, 9]) });
    const two = Buffer.concat([ping, ping]);
    const p = new MtParser();
    const first = p.push(two.subarray(0, ping.length + 2));
    expect(first).toHaveLength(1);
    two.fill(0, 0, ping.length + 2); // the caller reuses its buffer
    expect([...first[0]!.data]).toEqual([7, 8, 9]);
    const second = p.push(Buffer.from(two.subarray(ping.length + 2)));
    expect(second).toHaveLength(1);
    expect([...second[0]!.data]).toEqual([7, 8, 9]);
    expect(p.counters).toEqual({ garbageBytes: 0, badFcs: 0, frames: 2 });
  });
});

/** A ZNP NV with a network formed (as herdsman leaves it), so an emulator started on it can run at once. */
function formedNv(): ZnpNv {
  const random = new SeededRandom('znp-formed');
  const nv = ZnpNv.factory('0x00124b0000000001', (n) => random.bytes(n));
  nv.items.set(NvId.PANID, Buffer.from([0x62, 0x1a]));
  nv.items.set(NvId.EXTENDED_PAN_ID, Buffer.from('dddddddddddddddd', 'hex'));
  nv.items.set(NvId.CHANLIST, Buffer.from([0, 0, 0, 4]));
  nv.items.set(NvId.PRECFGKEY, Buffer.from(random.bytes(16)));
  nv.formNetwork();
  nv.items.set(NvId.HAS_CONFIGURED_ZSTACK3, Buffer.from([0x55]));
  return nv;
}

describe('the ZNP emulator NV frame counter', () => {
  test('counted in place, it reads back through herdsman’s struct, and follows the entry when NV changes', () => {
    const nv = formedNv();
    expect(nv.frameCounter()).toBe(0);
    for (let i = 0; i < 5; i++) nv.advanceFrameCounter();
    nv.advanceFrameCounter(2);
    expect(nv.frameCounter()).toBe(7);
    expect(ZnpNv.fromSnapshot(nv.snapshot()).frameCounter()).toBe(7);
    // The host writes the table (a restore): the entry it wrote is counted from then on.
    const key = ZnpNv.extKey(NvExt.SYS_ZSTACK, NvExt.NWK_SEC_MATERIAL_TABLE, 0);
    const restored = Buffer.from(nv.extended.get(key)!);
    restored.writeUInt32LE(1000, 0);
    nv.extended.set(key, restored);
    nv.advanceFrameCounter();
    expect(nv.frameCounter()).toBe(1001);
    // The entry moved to another slot and the old one was cleared: the counter follows it.
    const moved = ZnpNv.extKey(NvExt.SYS_ZSTACK, NvExt.NWK_SEC_MATERIAL_TABLE, 3);
    nv.extended.set(moved, Buffer.from(nv.extended.get(key)!));
    nv.extended.set(key, Buffer.alloc(12));
    nv.advanceFrameCounter(4);
    expect(nv.frameCounter()).toBe(1005);
    expect(nv.extended.get(moved)!.readUInt32LE(0)).toBe(1005);
    expect(nv.extended.get(key)!.readUInt32LE(0)).toBe(0);
    // No network, no counter: nothing is counted.
    nv.clearNetwork();
    nv.advanceFrameCounter();
    expect(nv.frameCounter()).toBeUndefined();
  });

  test('wraps at 2^32 as the struct field does', () => {
    const nv = formedNv();
    nv.advanceFrameCounter(0xffff_fffe);
    nv.advanceFrameCounter(3);
    expect(nv.frameCounter()).toBe(1);
  });
});

/** A raw host on the emulator's TCP port: sends MT frames, keeps every frame that comes back, in order. */
async function mtHost(port: number): Promise<{
  socket: Socket;
  frames: MtFrame[];
  send(subsystem: number, name: string, values?: Params, type?: MtType): void;
  sendRaw(frames: Buffer[]): void;
}> {
  const socket = await connected(port);
  const parser = new MtParser();
  const frames: MtFrame[] = [];
  socket.on('data', (chunk: Buffer) => frames.push(...parser.push(chunk)));
  const frame = (subsystem: number, name: string, values: Params, type: MtType) => {
    const command = commandByName(subsystem, name);
    return encodeFrame({ type, subsystem, command: command.ID, data: writeParams(command.request ?? [], values) });
  };
  return {
    socket,
    frames,
    send: (subsystem, name, values = {}, type = MtType.SREQ) => socket.write(frame(subsystem, name, values, type)),
    sendRaw: (bytes) => socket.write(Buffer.concat(bytes)),
  };
}

const nameOf = (f: MtFrame) =>
  `${MtType[f.type]} ${f.type === MtType.SRSP ? commandOfSrsp(f) : findCommand(f.subsystem, f.command)?.name}`;
const commandOfSrsp = (f: MtFrame) => definition[f.subsystem]?.find((c) => c.ID === f.command)?.name;

/**
 * A ZNP emulator on a formed network with one joined device whose firmware `onLink` gets the link
 * the host opens; the host is a raw MT client.
 */
async function znpWithDevice(airDelayMs: number | undefined, onLink: (link: PeripheralLink) => void) {
  const emulator = await ZnpEmulator.start({
    nv: formedNv().snapshot(),
    joinRetryMs: 10,
    advertiseIntervalMs: 1e9,
    ...(airDelayMs === undefined ? {} : { airDelayMs }),
  });
  closers.push(() => emulator.close());
  emulator.addPeripheral({
    address: 'zb-wire-0001',
    advertisement: () => ({ deviceId: 'ZB-WIRE', attachMode: false }),
    onConnect: onLink,
  });
  const host = await mtHost(emulator.port);
  host.send(Subsystem.ZDO, 'startupFromApp', { startdelay: 0 });
  await eventually(() => host.frames.some((f) => nameOf(f) === 'AREQ stateChangeInd'), 'the network up');
  // Permit-join (ZDO mgmtPermitJoinReq: the emulator reads the duration from the 4th byte).
  const permit = commandByName(Subsystem.ZDO, 'mgmtPermitJoinReq');
  host.sendRaw([
    encodeFrame({
      type: MtType.SREQ,
      subsystem: Subsystem.ZDO,
      command: permit.ID,
      data: Buffer.from([0x02, 0, 0, 60, 0]),
    }),
  ]);
  const joined = await eventually(() => host.frames.find((f) => nameOf(f) === 'AREQ tcDeviceInd'), 'the device joined');
  await eventually(() => host.frames.some((f) => nameOf(f) === 'AREQ endDeviceAnnceInd'), 'its announce');
  const nwk = Number(readParams(commandByName(Subsystem.ZDO, 'tcDeviceInd').request ?? [], joined.data).nwkaddr);
  let transid = 0;
  const toDevice = (command: number, payload: Uint8Array) => {
    const zcl = encodeZcl({
      clusterSpecific: true,
      manufacturerCode: MANUFACTURER_CODE,
      serverToClient: false,
      disableDefaultResponse: true,
      tsn: transid,
      command,
      payload,
    });
    host.send(Subsystem.AF, 'dataRequest', {
      dstaddr: nwk,
      destendpoint: 1,
      srcendpoint: 1,
      clusterid: LINK_CLUSTER_ID,
      transid: ++transid & 0xff,
      options: 0,
      radius: 30,
      len: zcl.length,
      data: Buffer.from(zcl),
    });
  };
  return { emulator, host, toDevice };
}

describe('the ZNP emulator answers a read in one write', () => {
  test('requests read at once: their SRSPs in one write, in order', async () => {
    const emulator = await ZnpEmulator.start({ advertiseIntervalMs: 1e9 });
    closers.push(() => emulator.close());
    const host = await mtHost(emulator.port);
    const sys = (name: string) => {
      const c = commandByName(Subsystem.SYS, name);
      return encodeFrame({ type: MtType.SREQ, subsystem: Subsystem.SYS, command: c.ID, data: Buffer.alloc(0) });
    };
    host.sendRaw([sys('ping'), sys('version'), sys('getExtAddr')]);
    await eventually(() => host.frames.length >= 3, 'three SRSPs');
    expect(host.frames.map(nameOf)).toEqual(['SRSP ping', 'SRSP version', 'SRSP getExtAddr']);
    expect(emulator.counters.framesOut).toBe(3);
    expect(emulator.counters.hostWrites).toBe(1);
  });

  test('airDelayMs 0: a data request’s SRSP, its dataConfirm and the device’s answer leave in one write, in that order', async () => {
    const { emulator, host, toDevice } = await znpWithDevice(0, (link) => {
      // The lock answers each frame at once (as a SimLock does: no await before its send).
      link.onFrame((frame) => void link.send(Uint8Array.from(frame, (b) => b ^ 0xff)));
    });
    const from = host.frames.length;
    const writes = emulator.counters.hostWrites;
    toDevice(LinkCommand.open, new Uint8Array(0));
    await eventually(() => host.frames.length >= from + 3, 'the link open acknowledged');
    expect(host.frames.slice(from).map(nameOf)).toEqual(['SRSP dataRequest', 'AREQ dataConfirm', 'AREQ incomingMsg']);
    expect(emulator.counters.hostWrites - writes).toBe(1);

    const next = host.frames.length;
    const [fragment] = zigbeeFragments(1, Uint8Array.from([1, 2, 3]));
    toDevice(LinkCommand.fragment, fragment!);
    await eventually(() => host.frames.length >= next + 3, 'the lock’s answer');
    const burst = host.frames.slice(next);
    expect(burst.map(nameOf)).toEqual(['SRSP dataRequest', 'AREQ dataConfirm', 'AREQ incomingMsg']);
    expect(readParams(commandByName(Subsystem.AF, 'dataConfirm').request ?? [], burst[1]!.data)).toMatchObject({
      status: 0,
      transid: 2,
    });
    expect(emulator.counters.hostWrites - writes).toBe(2);
    expect(emulator.counters.linkFragmentsFromHub).toBe(1);
    expect(emulator.counters.linkFragmentsToHub).toBe(1);
  });

  test('the default air delay: the same frames in the same order, the SRSP at once and the rest later', async () => {
    const { emulator, host, toDevice } = await znpWithDevice(undefined, () => {});
    const from = host.frames.length;
    const writes = emulator.counters.hostWrites;
    toDevice(LinkCommand.open, new Uint8Array(0));
    await eventually(() => host.frames.length >= from + 3, 'the link open acknowledged');
    expect(host.frames.slice(from).map(nameOf)).toEqual(['SRSP dataRequest', 'AREQ dataConfirm', 'AREQ incomingMsg']);
    expect(emulator.counters.hostWrites - writes).toBe(3);
  });

  test('airDelayMs must be a whole number of milliseconds, 0 to 60 s', async () => {
    for (const airDelayMs of [-1, 0.5, 60_001, Number.NaN]) {
      await expect(ZnpEmulator.start({ airDelayMs })).rejects.toThrow(/airDelayMs must be an integer/);
    }
  });
});

/** A raw H4 host on the HCI emulator's TCP port; keeps every packet that comes back, in order. */
async function h4Host(port: number) {
  const socket = await connected(port);
  const packets: { kind: 'event' | 'acl'; code: number; body: Buffer }[] = [];
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      if (pending[0] === 0x04 && pending.length >= 3 && pending.length >= 3 + pending[2]!) {
        packets.push({ kind: 'event', code: pending[1]!, body: pending.subarray(3, 3 + pending[2]!) });
        pending = pending.subarray(3 + pending[2]!);
      } else if (pending[0] === 0x02 && pending.length >= 5 && pending.length >= 5 + pending.readUInt16LE(3)) {
        const len = pending.readUInt16LE(3);
        packets.push({ kind: 'acl', code: pending.readUInt16LE(1) & 0x0fff, body: pending.subarray(5, 5 + len) });
        pending = pending.subarray(5 + len);
      } else break;
    }
  });
  const command = (opcode: number, params: Buffer = Buffer.alloc(0)) => {
    const b = Buffer.alloc(4 + params.length);
    b[0] = 0x01;
    b.writeUInt16LE(opcode, 1);
    b[3] = params.length;
    params.copy(b, 4);
    return b;
  };
  const acl = (handle: number, attPdu: Buffer) => {
    const b = Buffer.alloc(9 + attPdu.length);
    b[0] = 0x02;
    b.writeUInt16LE(handle | (0x02 << 12), 1);
    b.writeUInt16LE(4 + attPdu.length, 3);
    b.writeUInt16LE(attPdu.length, 5);
    b.writeUInt16LE(0x0004, 7);
    attPdu.copy(b, 9);
    return b;
  };
  return { socket, packets, command, acl, write: (...bytes: Buffer[]) => socket.write(Buffer.concat(bytes)) };
}

describe('the HCI emulator answers a read in one write', () => {
  test('commands read at once: their Command Completes in one write, in order', async () => {
    const emulator = await HciEmulator.start({ advertiseIntervalMs: 1e6 });
    closers.push(() => emulator.close());
    const host = await h4Host(emulator.port);
    await eventually(() => emulator.hostAttached, 'the host attached');
    host.write(host.command(0x0c03), host.command(0x1009), host.command(0x1001));
    await eventually(() => host.packets.length >= 3, 'three Command Completes');
    expect(host.packets.map((p) => `${p.code}:${p.body.readUInt16LE(1).toString(16)}`)).toEqual([
      '14:c03',
      '14:1009',
      '14:1001',
    ]);
    expect(emulator.counters().hostWrites).toBe(1);
  });

  test('a frame written to a lock: Number Of Completed Packets, then the lock’s answer, in one write', async () => {
    const emulator = await HciEmulator.start({ advertiseIntervalMs: 1e6, connectDelayMs: 1 });
    closers.push(() => emulator.close());
    const address = 'aa:bb:cc:00:77:01';
    const got: Uint8Array[] = [];
    emulator.addPeripheral({
      address,
      advertisement: () => undefined,
      onConnect: (link) =>
        link.onFrame((frame) => {
          got.push(frame);
          void link.send(Uint8Array.from(frame, (b) => b ^ 0xff));
        }),
    });
    const host = await h4Host(emulator.port);
    await eventually(() => emulator.hostAttached, 'the host attached');
    const create = Buffer.alloc(25);
    Buffer.from(address.split(':').reverse().join(''), 'hex').copy(create, 6);
    host.write(host.command(0x200d, create));
    const complete = await eventually(
      () => host.packets.find((p) => p.kind === 'event' && p.code === 0x3e && p.body[0] === 0x01),
      'LE Connection Complete',
    );
    const handle = complete.body.readUInt16LE(2);
    // Notifications on (CCCD write request): its Completed Packets and Write Response in one write.
    let from = host.packets.length;
    let writes = emulator.counters().hostWrites;
    host.write(host.acl(handle, Buffer.from([0x12, 0x04, 0x00, 0x01, 0x00])));
    await eventually(() => host.packets.length >= from + 2, 'the write response');
    expect(host.packets.slice(from).map((p) => `${p.kind}:${p.kind === 'acl' ? p.body[4] : p.code}`)).toEqual([
      'event:19',
      'acl:19',
    ]);
    expect(emulator.counters().hostWrites - writes).toBe(1);
    // A frame to the lock (write without response): Completed Packets, then the lock's notification.
    from = host.packets.length;
    writes = emulator.counters().hostWrites;
    const frame = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const [fragment] = bleFragments(frame, 0, 23);
    host.write(host.acl(handle, Buffer.concat([Buffer.from([0x52, 0x03, 0x00]), fragment!])));
    await eventually(() => host.packets.length >= from + 2, 'the lock’s answer');
    const burst = host.packets.slice(from);
    expect(burst.map((p) => `${p.kind}:${p.kind === 'acl' ? p.body[4] : p.code}`)).toEqual(['event:19', 'acl:27']);
    expect([...burst[1]!.body.subarray(11)]).toEqual([...frame].map((b) => b ^ 0xff));
    expect(got).toHaveLength(1);
    expect(emulator.counters().hostWrites - writes).toBe(1);
  });
});

describe('the simulated lock’s state copies', () => {
  test('a copy equals what structuredClone gives and shares nothing with its source', () => {
    const state: LockPersisted = {
      ...factoryState(),
      boundHub: 'ab'.repeat(32),
      events: [{ seq: 1, at: 5, type: 'opened', by: 'remote', credentialId: null }],
      offlineAccess: [{ kind: 'pin', credentialId: 'c-1', digest: '0'.repeat(64), windows: [{ from: 1, until: 2 }] }],
      pinKeys: [{ version: 1, key: 'cd'.repeat(32), until: null }],
      firmware: { version: '1.0.0', staging: { sha256: 'ef'.repeat(32), manifest: '00', signature: '11', data: '' } },
    };
    const copy = copyPersisted(state);
    expect(copy).toStrictEqual(structuredClone(state));
    copy.events[0]!.seq = 9;
    copy.offlineAccess[0]!.windows[0]!.until = 9;
    copy.refusals.busy = 9;
    copy.firmware!.staging!.data = 'changed';
    expect(state.events[0]!.seq).toBe(1);
    expect(state.offlineAccess[0]!.windows[0]!.until).toBe(2);
    expect(state.refusals.busy).toBe(0);
    expect(state.firmware?.staging?.data).toBe('');
  });

  test('an own __proto__ key (as JSON.parse makes) stays a plain property and changes no prototype', () => {
    const parsed = JSON.parse('{"a":{"__proto__":{"polluted":true}}}') as Record<string, unknown>;
    const copy = copyPersisted(parsed as unknown as LockPersisted) as unknown as Record<
      string,
      Record<string, unknown>
    >;
    expect(Object.getPrototypeOf(copy.a)).toBe(Object.prototype);
    expect(Object.hasOwn(copy.a!, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

/** A TCP connection to an emulator's port on this host, destroyed after the test. */
async function connected(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  closers.push(() => {
    socket.destroy();
  });
  return socket;
}
