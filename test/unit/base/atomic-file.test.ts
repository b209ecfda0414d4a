import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../../src/base/atomic-file.js';
import { tempDir } from '../../helpers/tmp.js';

describe('writeFileAtomic', () => {
  for (const flush of [true, false]) {
    it(`replaces the file whole, owner-only, and leaves no temporary file (flush: ${flush})`, () => {
      const dir = tempDir('iqhub-atomic-');
      const path = join(dir, 'state.json');
      writeFileAtomic(path, 'first\n', 0o600, { flush });
      writeFileAtomic(path, new TextEncoder().encode('second\n'), 0o600, { flush });
      expect(readFileSync(path, 'utf8')).toBe('second\n');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(readdirSync(dir)).toEqual(['state.json']);
    });
  }
});
