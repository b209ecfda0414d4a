import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { asyncApiYaml } from '../../src/contract/asyncapi.js';

/**
 * The generated documents, written again (`npm run docs`; `npm run man` and `npm run asyncapi` are
 * the same): docs/asyncapi.yaml from the contract's schemas, docs/iqhub.1 from the CLI's help.
 * Tests fail while either differs from what the code makes (test/unit/contract/asyncapi.test.ts,
 * test/integration/cli-conventions.test.ts).
 */

// Paths as compiled: this file runs as dist/test/helpers/generate-docs.js.
const ASYNCAPI_YAML = fileURLToPath(new URL('../../../docs/asyncapi.yaml', import.meta.url));
const MAN_PAGE = fileURLToPath(new URL('../../../docs/iqhub.1', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export const asyncApiText = () => asyncApiYaml((v) => stringify(v, { lineWidth: 0 }));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(ASYNCAPI_YAML, asyncApiText());
  writeFileSync(MAN_PAGE, execFileSync(process.execPath, [CLI, 'man'], { encoding: 'utf8' }));
  process.stdout.write(`wrote ${ASYNCAPI_YAML} and ${MAN_PAGE}\n`);
}
