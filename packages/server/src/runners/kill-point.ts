// TEST-ONLY fault injection. Compiled in but inert unless AIRLOCK_TEST_KILL_AT is set in the
// server's environment: the fault tests (packages/cli/src/faults.test.ts) set it to one
// named point to SIGKILL the server exactly there. Never set it in production.

const armed = process.env['AIRLOCK_TEST_KILL_AT'];

/** Kill this process with SIGKILL if the test armed `point`. */
export function killPoint(point: string): void {
  if (armed === point) process.kill(process.pid, 'SIGKILL');
}
