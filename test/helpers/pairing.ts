import { PairingStore } from '../../src/link/pairing.js';
import type { Store } from '../../src/store/store.js';

/** A pairing store on `store` with one lock, `L1` on the simulated radio, bound at `now`. */
export function pairingWithLock(store: Store, now: number): PairingStore {
  const pairing = new PairingStore(store);
  pairing.bind({ lockId: 'L1', bearer: 'sim', address: 'a1', staticPublic: new Uint8Array(32), state: 'bound', now });
  return pairing;
}
