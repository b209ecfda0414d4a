import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { refusal } from '../../helpers/refusal.js';

const version = (v: string) => parseConfig(`uplink:\n  mqttVersion: ${v}\n`, 'config.yaml').uplink.mqttVersion;

describe('uplink.mqttVersion as people write it', () => {
  it('takes 5 as the docs write it (a YAML number) and "5", and reads both as 5', () => {
    expect(version('5')).toBe('5');
    expect(version('"5"')).toBe('5');
  });

  it('takes 3.1.1, and 4 or "4" (the protocol level of 3.1.1), and reads them as 3.1.1', () => {
    expect(version('3.1.1')).toBe('3.1.1');
    expect(version('"3.1.1"')).toBe('3.1.1');
    expect(version('4')).toBe('3.1.1');
    expect(version('"4"')).toBe('3.1.1');
  });

  it('refuses MQTT 3.1 (level 3) and anything else, saying what it takes', () => {
    for (const bad of ['3', '3.1', '6', '"five"', '"5.0"', 'true', 'null']) {
      const r = refusal(() => version(bad));
      expect(r.code, bad).toBe('config.invalid');
      expect(r.message, bad).toMatch(/uplink\.mqttVersion.*expected 5 or 3\.1\.1/);
    }
  });
});
