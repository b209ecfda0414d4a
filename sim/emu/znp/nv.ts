import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * The emulated coordinator's non-volatile memory: the legacy OSAL items (by id) and the Z-Stack
 * 3.x.0 extended table entries (by system id, item id, sub id), as raw bytes in the same layouts a
 * CC2652 keeps (aligned structs, built with zigbee-herdsman's own struct definitions). The state is
 * a plain snapshot (hex strings), so a test can persist it, restart the emulator on it and resume,
 * or inspect what network key, PAN ids and frame counter the coordinator was given.
 */

export const NvId = {
  EXTADDR: 0x01,
  STARTUP_OPTION: 0x03,
  NIB: 0x21,
  NWK_ACTIVE_KEY_INFO: 0x3a,
  NWK_ALTERN_KEY_INFO: 0x3b,
  APS_LINK_KEY_TABLE: 0x4c,
  HAS_CONFIGURED_ZSTACK3: 0x60,
  PRECFGKEY: 0x62,
  PANID: 0x83,
  CHANLIST: 0x84,
  EXTENDED_PAN_ID: 0x2d,
  NWKKEY: 0x82,
  TCLK_SEED: 0x101,
} as const;

/** Extended (Z-Stack 3.x.0) NV: system id ZSTACK and its table item ids. */
export const NvExt = {
  SYS_ZSTACK: 1,
  ADDRMGR: 1,
  TCLK_TABLE: 4,
  APS_KEY_DATA_TABLE: 6,
  NWK_SEC_MATERIAL_TABLE: 7,
} as const;

const TABLE_CAPACITY = 8;
const SEC_MATERIAL_CAPACITY = 12;

interface NibStruct {
  nwkPanId: number;
  extendedPANID: Buffer;
  channelList: number;
  nwkLogicalChannel: number;
  nwkDevAddress: number;
  nwkCoordAddress: number;
  nwkState: number;
  SecurityLevel: number;
  SecureAllFrames: number;
  nwkKeyLoaded: number;
  nwkUpdateId: number;
  nwkProtocolVersion: number;
  MaxChildren: number;
  MaxDepth: number;
  MaxRouters: number;
  CapabilityFlags: number;
  serialize(alignment: 'aligned' | 'unaligned'): Buffer;
}

interface Serializable {
  serialize(alignment: 'aligned' | 'unaligned'): Buffer;
}

interface StructsModule {
  nib(data?: Buffer, alignment?: 'aligned' | 'unaligned'): NibStruct;
  nwkKeyDescriptor(data?: Buffer): { keySeqNum: number; key: Buffer } & Serializable;
  nwkSecMaterialDescriptorEntry(data?: Buffer): { FrameCounter: number; extendedPanID: Buffer } & Serializable;
  addressManagerEntry(): Serializable;
  apsLinkKeyDataEntry(): Serializable;
  apsTcLinkKeyEntry(): Serializable;
  securityManagerTable(capacity: number): Serializable;
}

const require = createRequire(import.meta.url);
const Structs = require('zigbee-herdsman/dist/adapter/z-stack/structs/index.js') as StructsModule;

export interface ZnpNvSnapshot {
  readonly version: 1;
  /** The coordinator's IEEE address, "0x" + 16 hex digits. */
  readonly ieee: string;
  /** Legacy items: id (decimal) → hex. */
  readonly items: Readonly<Record<string, string>>;
  /** Extended entries: "sys:item:sub" → hex. */
  readonly extended: Readonly<Record<string, string>>;
}

/** A Map that counts its changes (set, delete, clear), so that what was derived from it can tell it is stale. */
class CountedMap<K> extends Map<K, Buffer> {
  readonly #changed: () => void;

  constructor(changed: () => void) {
    super();
    this.#changed = changed;
  }

  override set(key: K, value: Buffer): this {
    this.#changed();
    return super.set(key, value);
  }

  override delete(key: K): boolean {
    this.#changed();
    return super.delete(key);
  }

  override clear(): void {
    this.#changed();
    super.clear();
  }
}

export class ZnpNv {
  ieee: string;
  /** Changes to items and extended so far (see CountedMap). */
  #changes = 0;
  readonly items = new CountedMap<number>(() => this.#changes++);
  readonly extended = new CountedMap<string>(() => this.#changes++);
  /** The last network fingerprint and the NIB and key it was computed from. */
  #fingerprint: { nib: Buffer; key: Buffer; value: string } | undefined;
  /** Where the current network's frame counter is, as of #changes = `at` (see advanceFrameCounter). */
  #counterAt: { at: number; key: string } | undefined;

  private constructor(ieee: string) {
    this.ieee = ieee;
  }

  /** A new CC2652 out of the box: tables allocated, nothing commissioned. */
  static factory(ieee: string, randomBytes: (n: number) => Uint8Array): ZnpNv {
    const nv = new ZnpNv(ieee);
    nv.items.set(NvId.NWKKEY, Buffer.alloc(24));
    nv.items.set(NvId.TCLK_SEED, Buffer.from(randomBytes(16)));
    nv.items.set(NvId.APS_LINK_KEY_TABLE, Structs.securityManagerTable(TABLE_CAPACITY).serialize('aligned'));
    nv.#allocateTables();
    return nv;
  }

  static fromSnapshot(snapshot: ZnpNvSnapshot): ZnpNv {
    if (snapshot.version !== 1) throw new RangeError(`ZNP NV snapshot version ${String(snapshot.version)} unsupported`);
    const nv = new ZnpNv(snapshot.ieee);
    for (const [id, hex] of Object.entries(snapshot.items)) nv.items.set(Number(id), Buffer.from(hex, 'hex'));
    for (const [key, hex] of Object.entries(snapshot.extended)) nv.extended.set(key, Buffer.from(hex, 'hex'));
    return nv;
  }

  snapshot(): ZnpNvSnapshot {
    const items: Record<string, string> = {};
    for (const [id, value] of this.items) items[String(id)] = value.toString('hex');
    const extended: Record<string, string> = {};
    for (const [key, value] of this.extended) extended[key] = value.toString('hex');
    return { version: 1, ieee: this.ieee, items, extended };
  }

  static extKey(sys: number, item: number, sub: number): string {
    return `${sys}:${item}:${sub}`;
  }

  /** STARTUP_OPTION "clear state and configuration" at reset: the network is forgotten. */
  clearNetwork(): void {
    for (const id of [NvId.NIB, NvId.NWK_ACTIVE_KEY_INFO, NvId.NWK_ALTERN_KEY_INFO, NvId.HAS_CONFIGURED_ZSTACK3]) {
      this.items.delete(id);
    }
    for (const key of [...this.extended.keys()]) this.extended.delete(key);
    this.#allocateTables();
    this.items.set(NvId.STARTUP_OPTION, Buffer.from([0]));
  }

  /**
   * BDB formation as the firmware does it: the NIB from the commissioning items, the
   * pre-configured key becomes the active (and alternate) network key, and the security material
   * entry for the new extended PAN id starts its outgoing frame counter.
   */
  formNetwork(): void {
    const panId = this.items.get(NvId.PANID)?.readUInt16LE(0) ?? 0xffff;
    const extPanRaw = this.items.get(NvId.EXTENDED_PAN_ID) ?? Buffer.alloc(8);
    const channelMask = this.items.get(NvId.CHANLIST)?.readUInt32LE(0) ?? 1 << 11;
    const key = this.items.get(NvId.PRECFGKEY) ?? Buffer.alloc(16);
    const nib = Structs.nib();
    nib.nwkPanId = panId === 0xffff ? 0x1a62 : panId;
    nib.extendedPANID = Buffer.from(extPanRaw).reverse();
    nib.channelList = channelMask;
    nib.nwkLogicalChannel = lowestChannel(channelMask);
    nib.nwkDevAddress = 0;
    nib.nwkCoordAddress = 0;
    nib.nwkState = 1;
    nib.SecurityLevel = 5;
    nib.SecureAllFrames = 1;
    nib.nwkKeyLoaded = 1;
    nib.nwkProtocolVersion = 2;
    nib.MaxChildren = 20;
    nib.MaxDepth = 20;
    nib.MaxRouters = 5;
    nib.CapabilityFlags = 0x8f;
    this.items.set(NvId.NIB, nib.serialize('aligned'));
    const descriptor = Structs.nwkKeyDescriptor();
    descriptor.keySeqNum = 0;
    descriptor.key = Buffer.from(key.subarray(0, 16));
    this.items.set(NvId.NWK_ACTIVE_KEY_INFO, descriptor.serialize('aligned'));
    this.items.set(NvId.NWK_ALTERN_KEY_INFO, descriptor.serialize('aligned'));
    const material = Structs.nwkSecMaterialDescriptorEntry();
    material.FrameCounter = 0;
    material.extendedPanID = Buffer.from(extPanRaw).reverse();
    this.extended.set(ZnpNv.extKey(NvExt.SYS_ZSTACK, NvExt.NWK_SEC_MATERIAL_TABLE, 0), material.serialize('aligned'));
  }

  nib(): NibStruct | undefined {
    const raw = this.items.get(NvId.NIB);
    return raw ? Structs.nib(raw, 'aligned') : undefined;
  }

  /** The active network key, or undefined before a network is formed. */
  networkKey(): Buffer | undefined {
    const raw = this.items.get(NvId.NWK_ACTIVE_KEY_INFO);
    return raw ? Buffer.from(Structs.nwkKeyDescriptor(raw).key) : undefined;
  }

  panId(): number | undefined {
    return this.nib()?.nwkPanId;
  }

  /** Big-endian hex, as herdsman and Zigbee2MQTT print it. */
  extendedPanId(): string | undefined {
    const nib = this.nib();
    return nib ? Buffer.from(nib.extendedPANID).toString('hex') : undefined;
  }

  channel(): number | undefined {
    return this.nib()?.nwkLogicalChannel;
  }

  configured(): boolean {
    return this.items.get(NvId.HAS_CONFIGURED_ZSTACK3)?.[0] === 0x55 && this.items.has(NvId.NIB);
  }

  /** The outgoing NWK frame counter of the current network (security material entry matching the NIB). */
  frameCounter(): number | undefined {
    return this.#materialEntry()?.entry.FrameCounter;
  }

  /**
   * Counts `n` secured frames sent. Called for every frame on the air, so the entry that holds the
   * counter is looked up (NIB and table parsed) only when NV changed since the last time; the
   * counter is the entry's first field (uint32, little-endian, at offset 0 in the aligned layout),
   * counted up where it is.
   */
  advanceFrameCounter(n = 1): void {
    let key = this.#counterAt?.at === this.#changes ? this.#counterAt.key : undefined;
    if (key === undefined) {
      key = this.#materialEntry()?.key;
      if (key === undefined) return;
    }
    const raw = this.extended.get(key);
    if (!raw || raw.length < 4) return;
    // In place: the entry's bytes are the NV's own (every NV write replaces them with new ones).
    raw.writeUInt32LE((raw.readUInt32LE(0) + n) >>> 0, 0);
    this.#counterAt = { at: this.#changes, key };
  }

  /** A fingerprint of the network a device joined (extended PAN id and key), never the key itself. */
  networkFingerprint(): string | undefined {
    // Asked for every frame to or from a device: computed again only when the NIB or the key changed.
    const nibRaw = this.items.get(NvId.NIB);
    const keyRaw = this.items.get(NvId.NWK_ACTIVE_KEY_INFO);
    const memo = this.#fingerprint;
    if (memo && nibRaw?.equals(memo.nib) && keyRaw?.equals(memo.key)) return memo.value;
    const key = this.networkKey();
    const epid = this.extendedPanId();
    if (!key || !epid || !nibRaw || !keyRaw) return undefined;
    const value = createHash('sha256').update(epid).update(key).digest('hex').slice(0, 16);
    this.#fingerprint = { nib: Buffer.from(nibRaw), key: Buffer.from(keyRaw), value };
    return value;
  }

  #materialEntry() {
    const nib = this.nib();
    if (!nib) return undefined;
    let generic: { key: string; entry: ReturnType<StructsModule['nwkSecMaterialDescriptorEntry']> } | undefined;
    for (let sub = 0; sub < SEC_MATERIAL_CAPACITY; sub++) {
      const key = ZnpNv.extKey(NvExt.SYS_ZSTACK, NvExt.NWK_SEC_MATERIAL_TABLE, sub);
      const raw = this.extended.get(key);
      if (!raw) continue;
      const entry = Structs.nwkSecMaterialDescriptorEntry(raw);
      if (Buffer.from(entry.extendedPanID).equals(Buffer.from(nib.extendedPANID))) return { key, entry };
      if (!generic && Buffer.from(entry.extendedPanID).equals(Buffer.alloc(8, 0xff))) generic = { key, entry };
    }
    return generic;
  }

  #allocateTables(): void {
    const fill = (item: number, capacity: number, entry: () => Serializable) => {
      for (let sub = 0; sub < capacity; sub++) {
        this.extended.set(ZnpNv.extKey(NvExt.SYS_ZSTACK, item, sub), entry().serialize('aligned'));
      }
    };
    fill(NvExt.ADDRMGR, TABLE_CAPACITY, () => Structs.addressManagerEntry());
    fill(NvExt.TCLK_TABLE, TABLE_CAPACITY, () => Structs.apsTcLinkKeyEntry());
    fill(NvExt.APS_KEY_DATA_TABLE, TABLE_CAPACITY, () => Structs.apsLinkKeyDataEntry());
    fill(NvExt.NWK_SEC_MATERIAL_TABLE, SEC_MATERIAL_CAPACITY, () => Structs.nwkSecMaterialDescriptorEntry());
  }
}

function lowestChannel(mask: number): number {
  for (let c = 11; c <= 26; c++) if (mask & (1 << c)) return c;
  return 11;
}
