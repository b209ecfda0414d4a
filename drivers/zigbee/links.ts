import type { BearerError, BearerLink, CloseReason, ConnectOptions } from '../../hal/bearer.js';
import { err, ok, type Result } from '../../src/base/result.js';
import type { Coordinator } from './coordinator.js';
import { HubLink } from './link.js';
import { decodeZcl, LinkCommand, LOCK_ENDPOINT, MANUFACTURER_CODE } from './link-cluster.js';
import { addLinkCluster, sendLinkCommand } from './link-commands.js';

const IEEE = /^0x[0-9a-f]{16}$/;

interface LinkEntry {
  readonly link: HubLink;
  /** Resolves when the lock acknowledges the open. */
  acked?: () => void;
}

/**
 * The hub's open links, at most one per lock and maxLinks in all: connect()'s open/openAck
 * handshake, and the link-cluster frames the locks send, checked and routed to their link
 * (reassembly is HubLink's). Every refusal is counted, never thrown: anyone in range can send.
 */
export class Links {
  readonly #coordinator: Coordinator;
  readonly #maxLinks: number;
  readonly #sendTimeoutMs: number;
  readonly #entries = new Map<string, LinkEntry>();
  #frameIdSeed: number;

  constructor(coordinator: Coordinator, maxLinks: number, sendTimeoutMs: number, firstFrameId: number) {
    this.#coordinator = coordinator;
    this.#maxLinks = maxLinks;
    this.#sendTimeoutMs = sendTimeoutMs;
    this.#frameIdSeed = firstFrameId;
  }

  async connect(address: string, options: ConnectOptions): Promise<Result<BearerLink, BearerError>> {
    const c = this.#coordinator;
    const unavailable = c.unavailable();
    if (unavailable) return err(unavailable);
    const controller = c.controller!;
    if (!IEEE.test(address)) {
      return err({
        code: 'not-found',
        message: `ZigBee: ${address} is not an IEEE address (0x + 16 hex digits)`,
        address,
      });
    }
    const device = controller.getDeviceByIeeeAddr(address);
    if (device?.interviewState !== 'SUCCESSFUL' || !device.getEndpoint(LOCK_ENDPOINT)) {
      return err({ code: 'not-found', message: `ZigBee: no interviewed lock ${address} on this network`, address });
    }
    if (this.#entries.has(address)) {
      return err({ code: 'busy', message: `ZigBee: already connected or connecting to ${address}`, address });
    }
    if (this.#entries.size >= this.#maxLinks) {
      return err({
        code: 'busy',
        message: `ZigBee: all ${this.#maxLinks} links are open (the maxLinks limit, radios.zigbee.maxLinks); ${address} was not connected`,
        address,
        limit: this.#maxLinks,
      });
    }
    addLinkCluster(c, device);
    const generation = c.generation;
    const send = (command: number, payload: Uint8Array) =>
      sendLinkCommand(c, generation, device, command, payload, this.#sendTimeoutMs);
    const link = new HubLink(
      address,
      {
        sendFragment: (fragment) => send(LinkCommand.fragment, fragment),
        sendClose: async () => {
          await send(LinkCommand.close, new Uint8Array(0));
        },
        released: () => {
          if (this.#entries.get(address)?.link === link) this.#entries.delete(address);
        },
        sentFrame: () => {
          c.counters.framesOut++;
        },
      },
      this.#frameIdSeed++,
    );
    const entry: LinkEntry = { link };
    this.#entries.set(address, entry);
    const acked = new Promise<boolean>((resolve) => {
      entry.acked = () => resolve(true);
      const timer = c.clock.setTimeout(() => resolve(false), options.timeoutMs);
      link.onClose(() => {
        c.clock.clearTimeout(timer);
        resolve(false);
      });
    });
    const sent = await send(LinkCommand.open, new Uint8Array(0));
    if (!sent.ok) {
      link.closed('lost');
      c.counters.connectFailures++;
      return sent.error.code === 'radio-error'
        ? err({ code: 'not-found', message: `ZigBee: ${address} did not answer (${sent.error.message})`, address })
        : sent;
    }
    if (!(await acked) || !link.isOpen()) {
      const wasOpen = link.isOpen();
      link.closed('local');
      c.counters.connectFailures++;
      if (!wasOpen && c.state().status !== 'ready') return err(c.unavailable() ?? c.stoppedError());
      return err({
        code: 'timeout',
        message: `ZigBee: ${address} did not open a link within ${options.timeoutMs} ms`,
        address,
        timeoutMs: options.timeoutMs,
      });
    }
    c.counters.connects++;
    return ok(link);
  }

  /** A link-cluster frame from `address`. */
  receive(address: string, raw: Uint8Array, lqi: number): void {
    const counters = this.#coordinator.counters;
    const frame = decodeZcl(raw);
    if (!frame?.clusterSpecific || !frame.serverToClient || frame.manufacturerCode !== MANUFACTURER_CODE) {
      counters.rejected['bad-zcl']++;
      return;
    }
    const entry = this.#entries.get(address);
    switch (frame.command) {
      case LinkCommand.openAck:
        entry?.acked?.();
        return;
      case LinkCommand.close:
        entry?.link.closed('remote');
        return;
      case LinkCommand.fragment: {
        counters.fragmentsIn++;
        if (!entry?.link.isOpen()) {
          counters.withoutLink++;
          return;
        }
        const result = entry.link.receiveFragment(frame.payload, lqi);
        if (result.kind === 'rejected') counters.rejected[result.reason]++;
        else if (result.kind === 'frame') counters.framesIn++;
        return;
      }
      default:
        counters.rejected['unknown-command']++;
    }
  }

  /** The lock left the network. */
  left(address: string): void {
    this.#entries.get(address)?.link.closed('lost');
  }

  closeAll(reason: CloseReason): void {
    for (const { link } of [...this.#entries.values()]) link.closed(reason);
    this.#entries.clear();
  }

  /** Unfinished frames the open links replaced by newer ones. */
  abandonedFrames(): number {
    let abandoned = 0;
    for (const { link } of this.#entries.values()) abandoned += link.abandonedFrames;
    return abandoned;
  }
}
