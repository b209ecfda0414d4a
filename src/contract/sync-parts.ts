import { sha256HexOfText } from '../base/sha256.js';
import { MAX_SYNC_PARTS, type SyncPartPayload, type SyncPayload } from './mqtt-cloud-messages.js';
import { CONTRACT_VERSION } from './mqtt-topics.js';

/**
 * A sync in parts, both sides of it (docs/mqtt-api.md, "Sync in parts"): the cloud cuts the JSON
 * text of a sync's `data` into chunks that each fit one message; the hub joins them in index
 * order, checks the digest over the whole, and parses it as the whole sync it stands for. One
 * module for both, so the reference cloud and the hub cannot drift apart.
 */

/** Hex SHA-256 of the UTF-8 bytes of `text`: the `part.digest` of the set whose chunks join to it. */
export function partsDigest(text: string): string {
  return sha256HexOfText(text);
}

/** Bytes of a part message besides its chunk's escaped text: `{"v":1,"id":…,"part":{…},"chunk":""}` with room to spare. */
const PART_OVERHEAD = 512;

/**
 * `sync` as one message when its JSON fits `maxBytes`, else as parts that each fit, with ids from
 * `partId(index)`. Cuts fall on code-point boundaries, and each chunk is sized by its escaped
 * length in the part message (quotes and backslashes in the data grow when escaped).
 */
export function splitSync(
  sync: SyncPayload,
  maxBytes: number,
  partId: (index: number) => string,
): SyncPayload[] | SyncPartPayload[] {
  if (Buffer.byteLength(JSON.stringify(sync)) <= maxBytes) return [sync];
  const text = JSON.stringify(sync.data);
  const budget = maxBytes - PART_OVERHEAD;
  if (budget < 1024) throw new Error(`splitSync: a message limit of ${maxBytes} bytes is too small for parts`);
  const chunks: string[] = [];
  let at = 0;
  while (at < text.length) {
    let end = Math.min(text.length, at + budget);
    for (;;) {
      // Never between the two halves of a surrogate pair.
      if (end < text.length && isLowSurrogate(text.charCodeAt(end))) end--;
      const size = Buffer.byteLength(JSON.stringify(text.slice(at, end)));
      if (size <= budget) break;
      end = at + Math.max(1, Math.floor(((end - at) * budget) / size) - 8);
    }
    chunks.push(text.slice(at, end));
    at = end;
  }
  if (chunks.length > MAX_SYNC_PARTS) {
    throw new Error(`splitSync: ${chunks.length} parts, more than the ${MAX_SYNC_PARTS} a hub takes`);
  }
  const digest = partsDigest(text);
  const head = {
    v: CONTRACT_VERSION,
    kind: sync.kind,
    version: sync.version,
    ...(sync.baseVersion !== undefined ? { baseVersion: sync.baseVersion } : {}),
  } as const;
  return chunks.map((chunk, index) => ({
    ...head,
    id: partId(index),
    part: { sync: sync.id, index, count: chunks.length, digest },
    chunk,
  }));
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/**
 * The whole sync's text, for the hub's parser (mqtt-validate.ts `parseInbound('sync', …)`): the
 * header every part carried and the joined `data`. The caller checks the digest first, and after
 * parsing that the header read back is the parts' own (a chunk cannot smuggle in a member: a
 * repeated name is refused by the parser, an unknown one by the schema).
 */
export function wholeSyncText(
  head: Pick<SyncPartPayload, 'kind' | 'version' | 'baseVersion'> & { id: string },
  data: string,
): string {
  const base = head.baseVersion !== undefined ? `,"baseVersion":${head.baseVersion}` : '';
  return `{"v":${CONTRACT_VERSION},"id":${JSON.stringify(head.id)},"kind":${JSON.stringify(head.kind)},"version":${head.version}${base},"data":${data}}`;
}
