// TEST-ONLY fault injection. Compiled in but inert unless AIRLOCK_TEST_KILL_AT is set in the
// runner's environment: the fault tests (packages/cli/src/faults.test.ts) set it to one
// named point to SIGKILL the runner exactly there. Never set it in production.

const armed = process.env['AIRLOCK_TEST_KILL_AT'];

/** The points a test can arm, in the order a run passes them. */
export type RunnerKillPoint =
  | 'runner_before_accept'
  | 'runner_during_output'
  | 'runner_after_exec_before_result'
  | 'runner_after_result_before_ack';

/** Kill this process with SIGKILL if the test armed `point`. */
export function killPoint(point: RunnerKillPoint): void {
  if (armed === point) process.kill(process.pid, 'SIGKILL');
}

/** Whether `point` is armed (to kill only once a frame has been written to the socket). */
export function killPointArmed(point: RunnerKillPoint): boolean {
  return armed === point;
}
