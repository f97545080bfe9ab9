import { type CheckResult, fail, ok } from './check.js';

/** The Node.js airlock is built and tested for (package.json "engines"). */
export const MIN_NODE: readonly [number, number] = [20, 19];

/** Node is new enough. */
export function checkNode(version = process.versions.node): CheckResult {
  const [maj = 0, min = 0] = version.split('.').map(Number);
  const good = maj > MIN_NODE[0] || (maj === MIN_NODE[0] && min >= MIN_NODE[1]);
  return good
    ? ok('node', `Node.js ${version} (needs >= ${MIN_NODE.join('.')})`)
    : fail(
        'node',
        `Node.js ${version} is too old (needs >= ${MIN_NODE.join('.')})`,
        'install Node.js 20.19 or newer (e.g. from nodesource or your distribution backports)',
      );
}
