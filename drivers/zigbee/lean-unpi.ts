import { createRequire } from 'node:module';
import type { Controller } from 'zigbee-herdsman';

/**
 * herdsman's Z-Stack serial framing (unpi) formats a debug line per chunk read, per frame found and
 * per frame written — the bytes spread into an array and joined — before its logger is asked,
 * though our logger drops that namespace at every level (herdsman-log.ts: `:unpi:`). Per open that
 * is three chunks in and one frame out of string building for nothing. These replace the parser's
 * `_transform` and the writer's `writeFrame` on the instances of one controller with the same
 * framing without the lines: the same start-of-frame search, length and checksum (herdsman's own
 * `Frame.fromBuffer`), the same frames emitted in the same order (test/unit/drivers/
 * zigbee-lean-unpi.test.ts runs both on the same byte streams). (Private; checked: when the
 * instances are not as expected, nothing is replaced.)
 */

const SOF = 0xfe;
/** SOF, length, two command bytes, checksum. */
const MIN_MESSAGE_LENGTH = 5;
const DATA_START = 4;

export interface UnpiFrameClass {
  fromBuffer(length: number, fcsPosition: number, buffer: Buffer): unknown;
}

interface ParserLike {
  buffer: Buffer;
  _transform(chunk: Buffer, encoding: unknown, cb: () => void): void;
  parseNext(): void;
  emit(event: string, value: unknown): boolean;
}

interface WriterLike {
  writeFrame(frame: { toBuffer(): Buffer }): void;
  push(chunk: Buffer): boolean;
}

/** herdsman's unpi Frame class (not exported by the package's index). */
export function unpiFrameClass(): UnpiFrameClass | undefined {
  try {
    const m = createRequire(import.meta.url)('zigbee-herdsman/dist/adapter/z-stack/unpi/frame.js') as {
      Frame?: Partial<UnpiFrameClass>;
    };
    return typeof m.Frame?.fromBuffer === 'function' ? (m.Frame as UnpiFrameClass) : undefined;
  } catch {
    return undefined;
  }
}

/** The parser's framing as herdsman 10.9.5 does it, without the debug lines. */
export function leanTransform(Frame: UnpiFrameClass) {
  return function transform(this: ParserLike, chunk: Buffer, _encoding: unknown, cb: () => void): void {
    let buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (buffer.length !== 0 && buffer[0] !== SOF) {
        // Skip to the next start of frame; without one, keep the bytes (as herdsman does).
        const index = buffer.indexOf(SOF);
        if (index !== -1) buffer = buffer.subarray(index);
      }
      if (buffer.length < MIN_MESSAGE_LENGTH || buffer[0] !== SOF) break;
      const dataLength = buffer[1]!;
      const fcsPosition = DATA_START + dataLength;
      const frameLength = fcsPosition + 1;
      if (buffer.length < frameLength) break;
      const frameBuffer = buffer.subarray(0, frameLength);
      this.buffer = buffer;
      try {
        this.emit('parsed', Frame.fromBuffer(dataLength, fcsPosition, frameBuffer));
      } catch {
        // A bad checksum (or a listener's error): the frame is dropped, as herdsman drops it.
      }
      buffer = buffer.subarray(frameLength);
    }
    this.buffer = buffer;
    cb();
  };
}

function leanWriteFrame(this: WriterLike, frame: { toBuffer(): Buffer }): void {
  this.push(frame.toBuffer());
}

/** Puts the lean framing on the controller's ZNP parser and writer; false when they are not there as expected. */
export function useLeanUnpi(controller: Controller, Frame: UnpiFrameClass | undefined): boolean {
  const znp = (controller as unknown as { adapter?: { znp?: { unpiParser?: unknown; unpiWriter?: unknown } } }).adapter
    ?.znp;
  const parser = znp?.unpiParser as Partial<ParserLike> | undefined;
  const writer = znp?.unpiWriter as Partial<WriterLike> | undefined;
  if (!Frame || !parser || !writer) return false;
  if (typeof parser._transform !== 'function' || typeof parser.parseNext !== 'function') return false;
  if (!Buffer.isBuffer(parser.buffer) || typeof writer.writeFrame !== 'function' || typeof writer.push !== 'function')
    return false;
  parser._transform = leanTransform(Frame);
  writer.writeFrame = leanWriteFrame;
  return true;
}
