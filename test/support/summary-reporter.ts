import type { Reporter, TestModule } from "vitest/node";

/**
 * Prints one plain closing line, `N passed, M failed, K skipped`, after vitest's own report, so any tool can
 * read the outcome of `npm test`. A file that fails to load counts as a failure, and so does an unhandled error.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    let skipped = 0;
    for (const module of testModules) {
      // A file that failed outside its tests (a failing beforeAll, an import error) counts as a failure even when
      // its tests show as skipped.
      const tests = [...module.children.allTests()];
      if (module.state() === "failed" && !tests.some((t) => t.result().state === "failed")) failed++;
      for (const test of tests) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
