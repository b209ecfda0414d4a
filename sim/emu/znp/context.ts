import type { ZnpAir } from './air.js';
import type { ZnpCounters } from './counters.js';
import type { AfEndpoint } from './descriptors.js';
import type { InstallCodes } from './install-codes.js';
import type { Params } from './mt.js';
import type { ZnpNv } from './nv.js';
import type { ZnpSerial } from './serial.js';

/**
 * What every MT command handler (mt-*.ts) acts on, named once: the coordinator's NV and RAM, the
 * line to the host, the hosted devices and the trust center's keys. Handlers are plain functions
 * of one request, in one table per subsystem (as Z-Stack's MT layer has one command processor per
 * subsystem), so that each subsystem can be read on its own.
 */

/** ZDO device state: started as the network's coordinator. */
export const ZB_COORD = 9;
export const STATUS = {
  SUCCESS: 0,
  FAILURE: 1,
  INVALID_PARAMETER: 2,
  NV_ITEM_INITIALIZED: 9,
  MAC_NO_ACK: 0xe9,
} as const;

/** The coordinator's RAM: what a power-up or a reset loses (NV keeps the rest). */
export interface CoordinatorRam {
  deviceState: number;
  /** Date.now() until which joins are admitted (0: closed). */
  permitJoinUntil: number;
  readonly endpoints: Map<number, AfEndpoint>;
  /** `${endpoint}:${groupId}`. */
  readonly groups: Set<string>;
}

export function freshRam(): CoordinatorRam {
  return { deviceState: 0, permitJoinUntil: 0, endpoints: new Map(), groups: new Set() };
}

/** A power-up: RAM state (endpoints, groups, permit-join, running network) is gone. */
export function powerUp(ram: CoordinatorRam): void {
  ram.deviceState = 0;
  ram.permitJoinUntil = 0;
  ram.endpoints.clear();
  ram.groups.clear();
}

export function permitJoinOpen(ram: CoordinatorRam): boolean {
  return Date.now() < ram.permitJoinUntil;
}

export interface ZnpContext {
  readonly nv: ZnpNv;
  readonly ram: CoordinatorRam;
  readonly counters: ZnpCounters;
  readonly serial: ZnpSerial;
  readonly air: ZnpAir;
  readonly installCodes: InstallCodes;
  /** Run `fn` after `ms` unless the emulator closed by then (answers that Z-Stack sends later). */
  later(ms: number, fn: () => void): void;
}

export interface MtRequest {
  readonly ctx: ZnpContext;
  /** The request's parameters, read with herdsman's definition. */
  readonly p: Params;
  /** The raw data, for requests whose last field has no length. */
  readonly data: Buffer;
  /** The SRSP, with the command's response parameters. */
  reply(values: Params): void;
}

export type MtHandler = (r: MtRequest) => void;
/** A subsystem's handlers by command name. */
export type MtHandlers = Readonly<Record<string, MtHandler>>;
