/** Process exit codes of the `airlock` command. Documented in `airlock action run --help`. */
export const ExitCode = {
  ok: 0,
  /** The command ran and found a problem (invalid pack, broken chain, action failed). */
  failure: 1,
  /** Bad command-line usage. */
  usage: 2,
  /** The action's arguments or limits were refused. */
  validationFailed: 3,
  /** The action could not run (hash mismatch, binary missing, script tampered). */
  error: 4,
  timeout: 5,
  cancelled: 6,
  internal: 70,
} as const;
