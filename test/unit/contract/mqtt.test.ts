import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildAsyncApi } from '../../../src/contract/asyncapi.js';
import { schemas } from '../../../src/contract/mqtt.js';

describe('the MQTT contract documents', () => {
  it('docs/asyncapi.yaml is generated from the schemas the code validates with', () => {
    const doc = parse(readFileSync(new URL('../../../docs/asyncapi.yaml', import.meta.url), 'utf8')) as unknown;
    expect(doc).toEqual(JSON.parse(JSON.stringify(buildAsyncApi())));
  });

  it('docs/mqtt-api.md names every topic of the contract', () => {
    const md = readFileSync(new URL('../../../docs/mqtt-api.md', import.meta.url), 'utf8');
    for (const topic of Object.keys(schemas)) expect(md).toContain(`\`${topic}\``);
  });
});
