import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { MqttClient } from 'mqtt';
import { generate } from 'mqtt-packet';
import { describe, expect, it, vi } from 'vitest';
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

describe('the uplink keepalive', () => {
  it('pings every keepalive period however busy the connection, and finds a silent broker within 1.5 periods', async () => {
    vi.useFakeTimers();
    const written: Buffer[] = [];
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        written.push(chunk);
        done();
      },
    });
    const options = sessionOptions('hub-ka', 'ks/hubs/hub-ka/status', {
      protocolVersion: 5,
      keepaliveSec: 10,
      sessionExpirySec: 3600,
      connectTimeoutMs: 5_000,
    });
    const client = new MqttClient(() => stream, options);
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.message));
    try {
      const packet = (p: Record<string, unknown>) => generate(p as never, { protocolVersion: 5 });
      stream.push(packet({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false }));
      await vi.advanceTimersByTimeAsync(10);
      expect(client.connected).toBe(true);
      // 0xc0: PINGREQ. The broker acknowledges something every second (a busy hub): with the timer
      // reset on every acknowledgement, no PINGREQ would ever go.
      const pings = () => written.filter((b) => b[0] === 0xc0).length;
      for (let s = 0; s < 11; s++) {
        stream.push(packet({ cmd: 'puback', messageId: 1000 + s, reasonCode: 0 }));
        await vi.advanceTimersByTimeAsync(1_000);
      }
      expect(pings()).toBe(1);
      expect(errors).toEqual([]);
      // No PINGRESP: the connection is given up within 1.5 periods of the last reset.
      await vi.advanceTimersByTimeAsync(10_000);
      expect(errors).toContain('Keepalive timeout');
    } finally {
      client.end(true);
      stream.destroy();
      vi.useRealTimers();
    }
  });
});
