/**
 * H4 (UART transport) framing: a packet-type byte, then the packet. The emulator parses what the
 * host sends; a byte stream can carry anything (line noise, a host gone mad), so nothing here
 * throws: unknown packet types and impossible lengths are counted and skipped byte by byte until
 * the stream makes sense again.
 */

export const H4_COMMAND = 0x01;
export const H4_ACL = 0x02;
export const H4_EVENT = 0x04;

export type H4Packet =
  | { readonly type: 'command'; readonly opcode: number; readonly params: Buffer }
  | { readonly type: 'acl'; readonly handle: number; readonly pb: number; readonly data: Buffer };

export interface H4Counters {
  /** Bytes skipped because they started no packet the emulator knows. */
  garbageBytes: number;
  /** Packets with an impossible length (an ACL packet above the advertised buffer size). */
  oversizedPackets: number;
}

export class H4Parser {
  readonly #maxAcl: number;
  readonly #counters: H4Counters;
  #buf: Buffer = Buffer.alloc(0);

  /** `maxAcl`: the ACL data length the controller advertised; longer packets are rejected. */
  constructor(maxAcl: number, counters: H4Counters) {
    this.#maxAcl = maxAcl;
    this.#counters = counters;
  }

  /** Bytes in, whole packets out (in order). */
  push(chunk: Buffer): H4Packet[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: H4Packet[] = [];
    for (;;) {
      const b = this.#buf;
      if (b.length === 0) break;
      const type = b[0];
      if (type === H4_COMMAND) {
        if (b.length < 4) break;
        const len = b[3] as number;
        if (b.length < 4 + len) break;
        out.push({ type: 'command', opcode: b.readUInt16LE(1), params: Buffer.from(b.subarray(4, 4 + len)) });
        this.#buf = b.subarray(4 + len);
      } else if (type === H4_ACL) {
        if (b.length < 5) break;
        const len = b.readUInt16LE(3);
        if (len > this.#maxAcl) {
          this.#counters.oversizedPackets++;
          this.#skip();
          continue;
        }
        if (b.length < 5 + len) break;
        const hf = b.readUInt16LE(1);
        out.push({ type: 'acl', handle: hf & 0x0fff, pb: (hf >> 12) & 0x3, data: Buffer.from(b.subarray(5, 5 + len)) });
        this.#buf = b.subarray(5 + len);
      } else {
        this.#skip();
      }
    }
    return out;
  }

  reset(): void {
    this.#buf = Buffer.alloc(0);
  }

  #skip(): void {
    this.#counters.garbageBytes++;
    this.#buf = this.#buf.subarray(1);
  }
}
