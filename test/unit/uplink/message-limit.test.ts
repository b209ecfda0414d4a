import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDevPki } from '../../../provisioning/dev-pki.js';
import { VirtualClock } from '../../../src/base/clock.js';
import { SeededRandom } from '../../../src/base/random.js';
import { silentLogger } from '../../../src/log/logger.js';
import { UplinkClient } from '../../../src/uplink/mqtt-client.js';
import { tempDir } from '../../helpers/tmp.js';

describe('the MQTT client and uplink.maxMessageBytes', () => {
  it('never hands the broker a payload larger than the limit: refused permanently with message.too-large', async () => {
    const pki = createDevPki({ dir: join(tempDir(), 'pki'), hubId: 'hub-limit' });
    const client = new UplinkClient({
      url: 'mqtts://localhost:1',
      hubId: 'hub-limit',
      serverName: 'localhost',
      ca: readFileSync(pki.ca.cert),
      cert: readFileSync(pki.hub.cert),
      key: readFileSync(pki.hub.key),
      clock: new VirtualClock(),
      random: new SeededRandom('message-limit'),
      log: silentLogger(),
      version: 'test',
      startedAt: 0,
      maxMessageBytes: 1024,
    });
    expect(await client.publish('events', 'x'.repeat(1025))).toEqual({
      ok: false,
      permanent: true,
      code: 'message.too-large',
    });
    // Multi-byte characters count as bytes, not characters.
    expect(await client.publish('events', 'é'.repeat(600))).toMatchObject({ code: 'message.too-large' });
    // Within the limit it goes on to the connection (not connected here).
    expect(await client.publish('events', 'x'.repeat(1024))).toMatchObject({ ok: false, code: 'not-connected' });
  });
});
