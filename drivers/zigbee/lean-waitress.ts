import type { Controller } from 'zigbee-herdsman';

/**
 * herdsman's Waitress (its table of requests waiting for an answer: the ZNP's SRSPs, the
 * adapter's AF data confirms and ZCL answers) builds the timeout's Error when a wait starts —
 * its message formatted and its stack captured twice (`new Error`, then `Error.captureStackTrace`)
 * — for every request, although nearly every request is answered and the Error thrown away. Two
 * waits per frame sent (the SRSP and the data confirm): about 0.06 ms of CPU per open here
 * (docs/operations.md, "Where the CPU of an open goes"). `leanWaitFor` is herdsman 10.9.5's
 * `waitFor` with the Error made when the timer fires instead: the same waiter record, id, timer
 * and message, the same rejection; only the timeout's stack trace now ends in the timer, not in
 * the caller of `start()` (test/unit/drivers/zigbee-lean-waitress.test.ts runs both).
 * (Private; checked: when a waitress is not as expected, nothing is replaced, and the bearer warns:
 * test/integration/zigbee-lean-fallback.test.ts.)
 */

interface Waiter {
  matcher: unknown;
  resolve: (payload: unknown) => void;
  reject: (e: Error) => void;
  timedout: boolean;
  resolved: boolean;
  ID: number;
  timer?: ReturnType<typeof setTimeout>;
}

export interface WaitressLike {
  waiters: Map<number, Waiter>;
  currentID: number;
  timeoutFormatter: (matcher: unknown, timeout: number) => string;
  waitFor(matcher: unknown, timeout: number): { ID: number; start: () => { promise: Promise<unknown>; ID: number } };
}

export function leanWaitFor(this: WaitressLike, matcher: unknown, timeout: number) {
  this.currentID += 1;
  const ID = this.currentID;
  const promise = new Promise<unknown>((resolve, reject) => {
    this.waiters.set(ID, { matcher, resolve, reject, timedout: false, resolved: false, ID });
  });
  const start = () => {
    const waiter = this.waiters.get(ID);
    if (waiter && !waiter.resolved && !waiter.timer) {
      waiter.timer = setTimeout(() => {
        waiter.timedout = true;
        waiter.reject(new Error(this.timeoutFormatter(matcher, timeout)));
      }, timeout);
    }
    return { promise, ID };
  };
  return { ID, start };
}

function isWaitress(w: unknown): w is WaitressLike {
  const x = w as Partial<WaitressLike> | undefined;
  return (
    x !== undefined &&
    x !== null &&
    x.waiters instanceof Map &&
    typeof x.currentID === 'number' &&
    typeof x.timeoutFormatter === 'function' &&
    typeof x.waitFor === 'function' &&
    x.waitFor.length === 2
  );
}

/** Puts leanWaitFor on the adapter's and the ZNP's waitresses; false (nothing replaced) when either is not as expected. */
export function useLeanWaitresses(controller: Controller): boolean {
  const adapter = (controller as unknown as { adapter?: { waitress?: unknown; znp?: { waitress?: unknown } } }).adapter;
  const mine = [adapter?.waitress, adapter?.znp?.waitress];
  if (!mine.every(isWaitress)) return false;
  for (const w of mine as WaitressLike[]) w.waitFor = leanWaitFor;
  return true;
}
