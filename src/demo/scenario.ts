import { describeError } from '../base/errors.js';

/** One step of a scripted scenario: a name that states the property, and a check that throws if it fails. */
export interface Step {
  name: string;
  run(): Promise<void> | void;
}

export interface ScenarioResult {
  passed: number;
  failed: number;
}

/** Run steps in order and print one line per step; never stops at the first failure. */
export async function runSteps(steps: Step[], out: (line: string) => void): Promise<ScenarioResult> {
  let passed = 0;
  let failed = 0;
  for (const step of steps) {
    try {
      await step.run();
      passed++;
      out(`  ✓ ${step.name}`);
    } catch (e) {
      failed++;
      out(`  ✗ ${step.name}: ${describeError(e)}`);
    }
  }
  return { passed, failed };
}

export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** Polls `cond` until it holds; throws (naming `what`) after `timeoutMs`. The demo's steps wait for the site with it. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
