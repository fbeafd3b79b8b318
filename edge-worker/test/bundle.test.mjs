// The deployable bundle stays within its budget: 150 KB with gzip -9 (CONTRACT §2b's
// `wrangler deploy --dry-run`, from the last build.sh output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundleSize, BUNDLE_BUDGET_GZIP } from './harness.mjs';

test(`the deployable bundle is at most ${BUNDLE_BUDGET_GZIP} bytes with gzip -9`, () => {
  const size = bundleSize();
  console.log(`# bundle: ${size.raw} bytes raw, ${size.gz} gzip -9 (${size.wrangler})`);
  assert.ok(size.gz > 10_000, `a bundle was built (${size.gz} bytes)`);
  assert.ok(size.gz <= BUNDLE_BUDGET_GZIP, `${size.gz} bytes gzip -9, over the budget of ${BUNDLE_BUDGET_GZIP}`);
});
