/**
 * The configuration file's JSON Schema: the single source of its keys, types and defaults.
 * docs/configuration.md documents the same keys; a test keeps the two in step.
 */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface HubConfig {
  dataDir: string;
  runDir: string;
  log: { level: LogLevel; pretty: boolean };
  secrets: { storageKeyFile: string | null };
  shutdown: { timeoutMs: number };
  simulation: {
    enabled: boolean;
    locks: number;
    seed: string;
    lossRate: number;
    duplicateRate: number;
    reorderRate: number;
    latencyMs: number;
  };
}

const absolutePath = { type: 'string', minLength: 1, pattern: '^/', description: 'an absolute path' } as const;

export const configSchema = {
  $id: 'https://iq-hub.invalid/schemas/config.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    dataDir: { ...absolutePath, default: '/var/lib/iq-hub' },
    runDir: { ...absolutePath, default: '/run/iq-hub' },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { type: 'string', enum: [...LOG_LEVELS], default: 'info' },
        pretty: { type: 'boolean', default: false },
      },
    },
    secrets: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        storageKeyFile: {
          anyOf: [absolutePath, { type: 'null' }],
          default: null,
          description: 'an absolute path, or null',
        },
      },
    },
    shutdown: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        timeoutMs: { type: 'integer', minimum: 1000, maximum: 60000, default: 8000 },
      },
    },
    simulation: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: false },
        locks: { type: 'integer', minimum: 0, maximum: 1000, default: 3 },
        seed: { type: 'string', minLength: 1, maxLength: 64, default: 'iq-hub-demo' },
        lossRate: { type: 'number', minimum: 0, maximum: 0.5, default: 0 },
        duplicateRate: { type: 'number', minimum: 0, maximum: 0.5, default: 0 },
        reorderRate: { type: 'number', minimum: 0, maximum: 0.5, default: 0 },
        latencyMs: { type: 'integer', minimum: 0, maximum: 5000, default: 0 },
      },
    },
  },
} as const;
