import { afterEach } from 'vitest';
import { Store } from '../../src/store/store.js';
import { tempDir } from './tmp.js';

const stores: Store[] = [];

/** A store in a temporary directory, closed after the current test (before the directory is removed). */
export function tempStore(): Store {
  const store = Store.open(tempDir());
  stores.push(store);
  return store;
}

// Registered after tmp.ts's hook, so run before it (vitest runs after-hooks as a stack).
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});
