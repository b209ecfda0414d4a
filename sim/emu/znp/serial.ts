import { createServer, type Server, type Socket } from 'node:net';
import type { Random } from '../../../src/base/random.js';
import type { ZnpCounters, ZnpFaults } from './counters.js';
import {
  commandByName,
  encodeFrame,
  type MtCommand,
  type MtFrame,
  MtParser,
  MtType,
  type Params,
  Subsystem,
  writeParams,
} from './mt.js';

/**
 * The dongle's serial line, which herdsman reaches over TCP: one host at a time, MT frames in and
 * out, and the faults that belong to the wire (a corrupted byte, a hung firmware that reads but
 * never answers). What the frames mean is the command handlers' business, not this module's.
 */

export interface ZnpSerialOptions {
  readonly host: string;
  /** 0 picks a free one, kept across unplug/plug. */
  readonly port: number;
  readonly random: Random;
  readonly counters: ZnpCounters;
  faults(): ZnpFaults;
  /** Whether a host may connect now (the dongle is plugged in and not closed). */
  accepts(): boolean;
  /** One whole frame from the host; a throw counts it as malformed. */
  onFrame(frame: MtFrame): void;
}

export class ZnpSerial {
  readonly #o: ZnpSerialOptions;
  #port: number;
  #server: Server | undefined;
  #socket: Socket | undefined;
  #parser = new MtParser();
  #stalled = false;
  /** Frames sent during a burst (see burst()), written together at its end. */
  #out: Buffer[] | undefined;

  constructor(options: ZnpSerialOptions) {
    this.#o = options;
    this.#port = options.port;
  }

  get port(): number {
    return this.#port;
  }

  get host(): string {
    return this.#o.host;
  }

  /** A hung firmware: frames are read but not answered, and nothing is sent. */
  get stalled(): boolean {
    return this.#stalled;
  }

  set stalled(stalled: boolean) {
    this.#stalled = stalled;
  }

  connected(): boolean {
    return this.#socket !== undefined && !this.#socket.destroyed;
  }

  async listen(): Promise<void> {
    const server = createServer((socket) => this.#onConnection(socket));
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address && typeof address === 'object') this.#port = address.port;
    this.#server = server;
  }

  /** Drops the host and stops listening. */
  async close(): Promise<void> {
    this.#socket?.destroy();
    this.#socket = undefined;
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  send(frame: MtFrame): void {
    const socket = this.#socket;
    if (!socket || socket.destroyed || this.#stalled) return;
    const bytes = encodeFrame(frame);
    const { corruptSerial } = this.#o.faults();
    if (corruptSerial > 0 && this.#o.random.float() < corruptSerial) {
      const i = 1 + this.#o.random.int(bytes.length - 1);
      bytes[i] = bytes[i]! ^ 0x5a;
      this.#o.counters.serialCorrupted++;
    }
    this.#o.counters.framesOut++;
    if (this.#out) this.#out.push(bytes);
    else {
      this.#o.counters.hostWrites++;
      socket.write(bytes);
    }
  }

  /**
   * Runs `fn` and writes every frame it sent in one socket write, in the order sent: what the
   * firmware answers to one read of the line (an SRSP, then its AREQs) leaves as one burst, as a
   * UART sends it, rather than one write (and one wake-up of the host) per frame. Nested bursts
   * join the outer one.
   */
  burst(fn: () => void): void {
    if (this.#out) {
      fn();
      return;
    }
    const out: Buffer[] = [];
    this.#out = out;
    try {
      fn();
    } finally {
      this.#out = undefined;
      const socket = this.#socket;
      if (out.length > 0 && socket && !socket.destroyed) {
        this.#o.counters.hostWrites++;
        socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      }
    }
  }

  /** The synchronous response to an SREQ. */
  srsp(command: MtCommand, subsystem: number, values: Params): void {
    this.send({ type: MtType.SRSP, subsystem, command: command.ID, data: writeParams(command.response ?? [], values) });
  }

  /** An asynchronous indication, by command name. */
  areq(subsystem: number, name: string, values: Params): void {
    const command = commandByName(subsystem, name);
    this.send({ type: MtType.AREQ, subsystem, command: command.ID, data: writeParams(command.request ?? [], values) });
  }

  /** A ZDO callback: source address, then the ZDO response body. */
  zdoAreq(name: string, srcaddr: number, body: Buffer): void {
    const command = commandByName(Subsystem.ZDO, name);
    const data = Buffer.alloc(2 + body.length);
    data.writeUInt16LE(srcaddr, 0);
    body.copy(data, 2);
    this.send({ type: MtType.AREQ, subsystem: Subsystem.ZDO, command: command.ID, data });
  }

  #onConnection(socket: Socket): void {
    if (!this.#o.accepts()) {
      this.#o.counters.connectionsRefused++;
      socket.destroy();
      return;
    }
    // A serial port has one host: a new one replaces the old.
    this.#socket?.destroy();
    this.#socket = socket;
    this.#parser = new MtParser();
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.#onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.#socket === socket) this.#socket = undefined;
    });
  }

  #onData(chunk: Buffer): void {
    const counters = this.#o.counters;
    const parser = this.#parser;
    const garbageBefore = parser.counters.garbageBytes;
    const badFcsBefore = parser.counters.badFcs;
    const frames = parser.push(chunk);
    counters.garbageBytes += parser.counters.garbageBytes - garbageBefore;
    counters.badFcs += parser.counters.badFcs - badFcsBefore;
    this.burst(() => {
      for (const frame of frames) {
        counters.framesIn++;
        if (this.#stalled) {
          counters.ignoredWhileStalled++;
          continue;
        }
        try {
          this.#o.onFrame(frame);
        } catch {
          // A request whose parameters do not parse: a real ZNP answers nothing useful either.
          counters.malformed++;
        }
      }
    });
  }
}
