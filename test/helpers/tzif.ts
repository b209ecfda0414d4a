// Zone files built byte by byte for the TZif reader's tests (src/base/tzif.ts).

/** A TZif version 2 file: an empty version 1 block, then the given types (UT offsets) and transitions. */
export function tzif(o: {
  types?: number[];
  transitions?: readonly (readonly [number, number])[];
  footer?: string | undefined;
  version2?: number;
  isstd?: number;
  unterminated?: boolean;
}): Buffer {
  const types = o.types ?? [0];
  const transitions = o.transitions ?? [];
  const head = (version: number, time: number, type: number, char: number, isstd: number) => {
    const h = Buffer.alloc(44);
    h.write('TZif', 0, 'latin1');
    h[4] = version;
    h.writeUInt32BE(isstd, 24);
    h.writeUInt32BE(time, 32);
    h.writeUInt32BE(type, 36);
    h.writeUInt32BE(char, 40);
    return h;
  };
  const v1 = Buffer.concat([head(0x32, 0, 1, 1, 0), Buffer.from([0, 0, 0, 0, 0, 0]), Buffer.from([0])]);
  const data = Buffer.alloc(transitions.length * 9 + types.length * 6 + 4 + (o.isstd ?? 0));
  let p = 0;
  for (const [t] of transitions) p = data.writeBigInt64BE(BigInt(t), p);
  for (const [, i] of transitions) p = data.writeUInt8(i, p);
  for (const off of types) {
    data.writeInt32BE(off, p);
    p += 6; // isdst 0, abbreviation index 0
  }
  data.write('ABC\0', p, 'latin1');
  const footer = o.footer === undefined ? '' : `\n${o.footer}${o.unterminated ? '' : '\n'}`;
  return Buffer.concat([
    v1,
    head(o.version2 ?? 0x32, transitions.length, types.length, 4, o.isstd ?? 0),
    data,
    Buffer.from(footer, 'latin1'),
  ]);
}
