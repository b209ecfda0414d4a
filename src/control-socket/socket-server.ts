import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { HubError } from '../base/errors.js';
import { socketAnswers } from '../base/unix-socket.js';
import { validateControlRequest } from '../contract/control-request-validator.generated.js';
import { type ControlRequest, type ControlResponse, MAX_LINE_BYTES } from '../contract/control-socket.js';
import { ID_PATTERN } from '../contract/mqtt-topics.js';
import type { Logger } from '../log/logger.js';
import { type ParamCheck, paramCheck } from './param-check.js';

export interface MethodSpec {
  /** JSON Schema of the params object. Unknown params are refused. */
  params: object;
  handler(params: Record<string, unknown>): Promise<unknown> | unknown;
}

/**
 * One schema problem in words: the parameter's name and, for an id, the rule rather than the
 * regular expression ("lockId is not an id: 1-64 of A-Z a-z 0-9 . _ : - …").
 */
function paramProblem(e: ErrorObject): string {
  const name = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || 'params';
  if (e.keyword === 'pattern' && (e.params as { pattern?: string }).pattern === ID_PATTERN) {
    return `${name} is not an id: 1-64 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit`;
  }
  if (e.keyword === 'pattern') return `${name} has characters or a form that is not allowed`;
  return `${name} ${e.message}`;
}

/** requestSchema (src/contract/control-socket.ts) compiled at build time: nothing is compiled at run time. */
const validateRequest = validateControlRequest as ValidateFunction<ControlRequest>;

/**
 * The daemon's side of the control socket: a Unix stream socket, mode 0660, one JSON request
 * per line. Only the daemon's user and group (iqhub) can connect.
 */
export class ControlServer {
  readonly path: string;
  readonly #log: Logger;
  readonly #methods = new Map<string, { spec: MethodSpec; validate: ParamCheck }>();
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #inFlight = 0;

  constructor(path: string, log: Logger) {
    this.path = path;
    this.#log = log;
  }

  register(method: string, spec: MethodSpec): void {
    if (this.#methods.has(method)) throw new Error(`control method ${method} registered twice`);
    const schema = { type: 'object', additionalProperties: false, ...spec.params };
    this.#methods.set(method, { spec, validate: paramCheck(schema, method) });
  }

  async start(): Promise<void> {
    mkdirSync(this.path.slice(0, this.path.lastIndexOf('/')) || '/', { recursive: true, mode: 0o750 });
    await removeStaleSocket(this.path);
    const server = createServer((socket) => this.#serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.path, 0o660);
    server.on('error', (e) => this.#log.error({ err: e }, 'control socket error'));
    this.#server = server;
  }

  /** Stop accepting, let in-flight requests finish (bounded by the caller), close connections. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (let i = 0; i < 50 && this.#inFlight > 0; i++) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.#sockets) s.destroy();
    await closed;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (Buffer.byteLength(buf) > MAX_LINE_BYTES && !buf.includes('\n')) {
        this.#reply(socket, {
          id: null,
          ok: false,
          error: { code: 'control.too-large', message: `request longer than ${MAX_LINE_BYTES} bytes` },
        });
        socket.end();
        buf = '';
        return;
      }
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) void this.#handle(socket, line);
        nl = buf.indexOf('\n');
      }
    });
  }

  async #handle(socket: Socket, line: string): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.#reply(socket, {
        id: null,
        ok: false,
        error: { code: 'control.bad-json', message: 'request is not valid JSON' },
      });
      return;
    }
    if (!validateRequest(parsed)) {
      const why = validateRequest.errors?.map((e) => `${e.instancePath || 'request'} ${e.message}`).join('; ');
      const id = typeof (parsed as { id?: unknown })?.id === 'number' ? (parsed as { id: number }).id : null;
      this.#reply(socket, {
        id,
        ok: false,
        error: { code: 'control.bad-request', message: `malformed request: ${why}` },
      });
      return;
    }
    const { id, method, params } = parsed;
    const entry = this.#methods.get(method);
    if (!entry) {
      this.#reply(socket, {
        id,
        ok: false,
        error: {
          code: 'control.unknown-method',
          message: `unknown method ${method}`,
          hint: `known: ${[...this.#methods.keys()].join(', ')}`,
        },
      });
      return;
    }
    if (!entry.validate(params)) {
      const why = entry.validate.errors?.map(paramProblem).join('; ');
      this.#reply(socket, {
        id,
        ok: false,
        error: {
          code: 'control.bad-params',
          message: `invalid request (${method}): ${why}`,
          hint: 'check the ids and values given on the command line (iqhub <command> --help)',
        },
      });
      return;
    }
    this.#inFlight++;
    try {
      const result = await entry.spec.handler(params);
      this.#reply(socket, { id, ok: true, result: result ?? null });
    } catch (e) {
      if (e instanceof HubError) {
        this.#reply(socket, {
          id,
          ok: false,
          error: { code: e.code, message: e.message, hint: e.hint },
        });
      } else {
        this.#log.error({ err: e, method }, 'control request failed');
        this.#reply(socket, {
          id,
          ok: false,
          error: { code: 'control.internal', message: `internal error in ${method}; see the daemon log` },
        });
      }
    } finally {
      this.#inFlight--;
    }
  }

  #reply(socket: Socket, response: ControlResponse): void {
    if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`);
  }
}

/**
 * A socket file left by a daemon that was killed is removed; one that answers belongs to a
 * running daemon, and starting a second one is refused.
 */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const alive = await socketAnswers(path);
  if (alive) {
    throw new HubError('control.in-use', `another iq-hub daemon is answering on ${path}`, {
      hint: 'stop it first (systemctl stop iq-hub), or give this one another runDir',
    });
  }
  unlinkSync(path);
}
