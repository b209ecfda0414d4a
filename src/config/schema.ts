import { ID_PATTERN } from '../contract/mqtt-topics.js';
import { LOG_LEVELS, type LogLevel } from '../log/levels.js';
import { DEFAULT_RUN_DIR } from './paths.js';

/**
 * The configuration file's JSON Schema: the single source of its keys, types and defaults.
 * docs/configuration.md documents the same keys; a test keeps the two in step.
 */
export interface HubConfig {
  dataDir: string;
  runDir: string;
  log: { level: LogLevel; pretty: boolean };
  secrets: { storageKeyFile: string | null };
  shutdown: { timeoutMs: number };
  store: { reserveMB: number };
  /** The Prometheus endpoint (src/metrics): off while `listen` is null. */
  metrics: { listen: string | null; allowRemote: boolean };
  uplink: {
    enabled: boolean;
    url: string | null;
    caFile: string | null;
    certFile: string | null;
    keyFile: string | null;
    serverName: string | null;
    mqttVersion: '5' | '3.1.1';
    keepaliveSec: number;
    sessionExpirySec: number;
    reconnectBaseMs: number;
    reconnectMaxMs: number;
    healthIntervalSec: number;
    outboxMaxMB: number;
    batchSize: number;
    inflight: number;
    /** `required`: events leave the outbox only on the cloud's `events/ack`; `off`: on the broker's PUBACK (not verified). */
    eventAck: 'required' | 'off';
    /** Unacknowledged events are published again after this long. */
    eventAckTimeoutSec: number;
    /** Events unacknowledged this long put the hub in the `not-acknowledged` fault (status, diag, health, security event). */
    eventAckFaultSec: number;
    /** The largest message the hub publishes, and the broker takes (docs/mqtt-api.md, "Message size"). */
    maxMessageBytes: number;
    /** A sync sent in parts that is not complete this long after its first part is dropped (`sync.incomplete`). */
    syncPartsTimeoutSec: number;
  };
  commands: {
    otpKeyFile: string | null;
    lockoutFailures: number;
    lockoutWindowSec: number;
    lockoutSec: number;
    maxSkewSec: number;
    counterWindow: number;
  };
  radios: {
    ble: {
      enabled: boolean;
      transport: 'hci' | 'uart';
      /** The kernel's HCI device number (hci0 = 0), for transport hci. */
      hciDevice: number;
      /** A serial HCI controller (H4), for transport uart. */
      uartPath: string | null;
      baudRate: number;
      maxConnections: number;
    };
    zigbee: {
      enabled: boolean;
      /** The coordinator: a serial device path, or tcp://host:port. */
      port: string | null;
      channel: number;
      baudRate: number;
      rtscts: boolean;
      maxLinks: number;
      backupIntervalMin: number;
    };
  };
  access: {
    /** The site's IANA time zone: access-group schedules are read in it. */
    timeZone: string;
    /** The cloud's Ed25519 public key for digital keys (PEM, or 32 bytes base64url); null: no digital keys. */
    cloudKeyFile: string | null;
    wrongPinLimit: number;
    pinDisableSec: number;
    offlineHorizonDays: number;
    offlineCapacity: number;
  };
  provisioning: {
    /** The hub id for `iqhub provision init` when none is given on the command line. */
    hubId: string | null;
    claimCertFile: string | null;
    claimKeyFile: string | null;
    claimCaFile: string | null;
    /** Share of the certificate's lifetime after which it is renewed. */
    rotateAtFraction: number;
  };
  simulation: {
    enabled: boolean;
    locks: number;
    seed: string;
    lossRate: number;
    duplicateRate: number;
    reorderRate: number;
    latencyMs: number;
    /** Simulated locks fsync their flash files (default); off for benchmarks, where it would be the hub machine's disk. */
    flashDurable: boolean;
  };
  backup: {
    /** The cloud's X25519 recovery public key (base64url, 32 bytes) hub backups are sealed to; null: no hub backup. */
    recoveryPublicKey: string | null;
  };
  firmware: {
    /** The lock vendors' Ed25519 public keys, 64 hex digits each: an image no one of them signed is refused. */
    vendorKeys: string[];
    maxImageBytes: number;
    /** Locks updated at once on one radio. */
    perRadio: number;
    /** Firmware blocks in flight to one lock. */
    window: number;
    /** Attempts of a transfer whose lock is lost before it is marked failed. */
    attempts: number;
    retryDelayMs: number;
  };
}

const absolutePath = { type: 'string', minLength: 1, pattern: '^/', description: 'an absolute path' } as const;
const optionalPath = {
  anyOf: [absolutePath, { type: 'null' }],
  default: null,
  description: 'an absolute path, or null',
} as const;

export const configSchema = {
  $id: 'https://iq-hub.invalid/schemas/config.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    dataDir: { ...absolutePath, default: '/var/lib/iq-hub' },
    runDir: { ...absolutePath, default: DEFAULT_RUN_DIR },
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
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        reserveMB: { type: 'integer', minimum: 0, maximum: 1024, default: 2 },
      },
    },
    metrics: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // Checked further at start (src/metrics/listen.ts): a loopback address unless allowRemote.
        listen: {
          anyOf: [
            { type: 'string', pattern: '^(/[^\\s]+|[0-9.]+:[0-9]{1,5}|\\[[0-9A-Fa-f:.]+\\]:[0-9]{1,5})$' },
            { type: 'null' },
          ],
          default: null,
          description: 'IP:PORT (127.0.0.1:9464, [::1]:9464), an absolute unix socket path, or null',
        },
        allowRemote: { type: 'boolean', default: false },
      },
    },
    uplink: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: false },
        url: {
          anyOf: [{ type: 'string', pattern: '^mqtts://[^/\\s]+(:[0-9]{1,5})?/?$' }, { type: 'null' }],
          default: null,
          description: 'an mqtts://host:port URL (TLS only), or null',
        },
        caFile: { anyOf: [absolutePath, { type: 'null' }], default: null, description: 'an absolute path, or null' },
        certFile: { anyOf: [absolutePath, { type: 'null' }], default: null, description: 'an absolute path, or null' },
        keyFile: { anyOf: [absolutePath, { type: 'null' }], default: null, description: 'an absolute path, or null' },
        serverName: {
          anyOf: [{ type: 'string', minLength: 1, maxLength: 253 }, { type: 'null' }],
          default: null,
          description: "the broker certificate's host name, or null for the URL's host",
        },
        // As people write it: YAML reads `5` as a number and `3.1.1` as a string; 4 is 3.1.1's
        // protocol level. The loader turns each into '5' or '3.1.1' (normalizeConfig).
        mqttVersion: {
          enum: ['5', 5, '3.1.1', '4', 4],
          default: '5',
          description: '5 or 3.1.1 (4, the protocol level of 3.1.1, is taken too)',
        },
        keepaliveSec: { type: 'integer', minimum: 5, maximum: 1200, default: 30 },
        sessionExpirySec: { type: 'integer', minimum: 0, maximum: 4294967295, default: 604800 },
        reconnectBaseMs: { type: 'integer', minimum: 100, maximum: 60000, default: 1000 },
        reconnectMaxMs: { type: 'integer', minimum: 1000, maximum: 3600000, default: 60000 },
        healthIntervalSec: { type: 'integer', minimum: 5, maximum: 86400, default: 60 },
        outboxMaxMB: { type: 'integer', minimum: 1, maximum: 10240, default: 50 },
        batchSize: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
        inflight: { type: 'integer', minimum: 1, maximum: 64, default: 8 },
        eventAck: { type: 'string', enum: ['required', 'off'], default: 'required' },
        eventAckTimeoutSec: { type: 'integer', minimum: 1, maximum: 3600, default: 60 },
        eventAckFaultSec: { type: 'integer', minimum: 1, maximum: 86400, default: 300 },
        maxMessageBytes: { type: 'integer', minimum: 16384, maximum: 268435455, default: 131072 },
        syncPartsTimeoutSec: { type: 'integer', minimum: 10, maximum: 86400, default: 600 },
      },
      if: { properties: { enabled: { const: true } }, required: ['enabled'] },
      // Evaluated before the defaults are filled in: a key that is missing fails `required`.
      // The certificate files may stay null: the installed identity in <dataDir>/identity is used.
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then; this object is never awaited.
      then: {
        required: ['url'],
        properties: {
          url: { type: 'string' },
        },
      },
    },
    radios: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        ble: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: false },
            transport: { type: 'string', enum: ['hci', 'uart'], default: 'hci' },
            hciDevice: { type: 'integer', minimum: 0, maximum: 15, default: 0 },
            uartPath: optionalPath,
            baudRate: { type: 'integer', minimum: 9600, maximum: 4000000, default: 1000000 },
            maxConnections: { type: 'integer', minimum: 1, maximum: 32, default: 4 },
          },
        },
        zigbee: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: false },
            port: {
              anyOf: [{ type: 'string', pattern: '^(/[^\\s]+|tcp://[^/\\s]+:[0-9]{1,5})$' }, { type: 'null' }],
              default: null,
              description: 'a serial device path (/dev/ttyUSB0) or tcp://host:port, or null',
            },
            channel: { type: 'integer', minimum: 11, maximum: 26, default: 15 },
            baudRate: { type: 'integer', minimum: 9600, maximum: 4000000, default: 115200 },
            rtscts: { type: 'boolean', default: false },
            maxLinks: { type: 'integer', minimum: 1, maximum: 64, default: 32 },
            backupIntervalMin: { type: 'integer', minimum: 5, maximum: 10080, default: 360 },
          },
        },
      },
    },
    access: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        timeZone: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_+/-]+$', default: 'UTC' },
        cloudKeyFile: optionalPath,
        wrongPinLimit: { type: 'integer', minimum: 1, maximum: 100, default: 5 },
        pinDisableSec: { type: 'integer', minimum: 1, maximum: 86400, default: 60 },
        offlineHorizonDays: { type: 'integer', minimum: 1, maximum: 60, default: 7 },
        offlineCapacity: { type: 'integer', minimum: 1, maximum: 65535, default: 500 },
      },
    },
    commands: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        otpKeyFile: {
          anyOf: [absolutePath, { type: 'null' }],
          default: null,
          description: 'an absolute path, or null',
        },
        lockoutFailures: { type: 'integer', minimum: 1, maximum: 1000, default: 5 },
        lockoutWindowSec: { type: 'integer', minimum: 1, maximum: 86400, default: 60 },
        lockoutSec: { type: 'integer', minimum: 1, maximum: 86400, default: 60 },
        maxSkewSec: { type: 'integer', minimum: 0, maximum: 600, default: 30 },
        counterWindow: { type: 'integer', minimum: 1, maximum: 1000000, default: 1000 },
      },
    },
    provisioning: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        hubId: {
          anyOf: [{ type: 'string', pattern: ID_PATTERN }, { type: 'null' }],
          default: null,
          description: 'a hub id (1-64 of A-Z a-z 0-9 . _ : -), or null',
        },
        claimCertFile: optionalPath,
        claimKeyFile: optionalPath,
        claimCaFile: optionalPath,
        rotateAtFraction: { type: 'number', minimum: 0.1, maximum: 0.95, default: 0.667 },
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
        flashDurable: { type: 'boolean', default: true },
      },
    },
    backup: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        recoveryPublicKey: {
          anyOf: [{ type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' }, { type: 'null' }],
          default: null,
          description: "the cloud's recovery public key: 32 bytes (X25519) in base64url, 43 characters; or null",
        },
      },
    },
    firmware: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        vendorKeys: {
          type: 'array',
          maxItems: 8,
          uniqueItems: true,
          items: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', description: 'an Ed25519 public key, 64 hex digits' },
          default: [],
        },
        maxImageBytes: { type: 'integer', minimum: 1024, maximum: 16777216, default: 4194304 },
        perRadio: { type: 'integer', minimum: 1, maximum: 16, default: 1 },
        window: { type: 'integer', minimum: 1, maximum: 8, default: 2 },
        attempts: { type: 'integer', minimum: 1, maximum: 100, default: 5 },
        retryDelayMs: { type: 'integer', minimum: 100, maximum: 600000, default: 2000 },
      },
    },
  },
} as const;
