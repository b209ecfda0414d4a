import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { sessionOptions } from '../../../src/uplink/broker-options.js';

/**
 * mqtt-packet builds, on the first packet it writes, a table of 65,536 two-byte Buffers (one per
 * packet id and length): ~6 MB of the daemon's heap for its whole life, for a few bytes saved per
 * packet. The hub's sessions turn it off (writeCache: false); this proves the table is not built
 * once such a client has written its CONNECT and a PUBLISH.
 */
describe('the uplink session options', () => {
  it('leave mqtt-packet without its 65,536-Buffer number table', async () => {
    const numbers = createRequire(import.meta.resolve('mqtt-packet'))('./numbers.js') as {
      cache: Record<number, Buffer>;
    };
    const written: Buffer[] = [];
    let firstWrite: () => void = () => {};
    const wroteOnce = new Promise<void>((r) => {
      firstWrite = r;
    });
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        written.push(chunk);
        firstWrite();
        done();
      },
    });
    const options = sessionOptions('hub-wc', 'ks/hubs/hub-wc/status', {
      protocolVersion: 5,
      keepaliveSec: 30,
      sessionExpirySec: 3600,
      connectTimeoutMs: 5_000,
    });
    expect(options.writeCache).toBe(false);
    const client = new MqttClient(() => stream, { ...options, connectTimeout: 5_000 });
    try {
      // CONNECT is written on the stream at once; a QoS 1 publish waits in the queue until CONNACK.
      await wroteOnce;
      expect(written.length).toBeGreaterThan(0);
      expect(Object.keys(numbers.cache)).toHaveLength(0);
    } finally {
      client.end(true);
      stream.destroy();
    }
  });
});
