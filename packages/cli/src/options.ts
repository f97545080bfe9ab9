import { AirlockError } from '@airlock/core';
import { loadRunnerConfig, type RunnerConfig } from '@airlock/runner';

/** Collects repeatable `--arg k=v` / `--limit k=v` options into a record. */
export function collectKeyValue(flag: string) {
  return (value: string, previous: Record<string, string> = {}): Record<string, string> => {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new AirlockError('invalid_args', `${flag} ${JSON.stringify(value)}: expected NAME=VALUE`);
    const key = value.slice(0, eq);
    if (Object.hasOwn(previous, key)) throw new AirlockError('invalid_args', `${flag} ${key}: given twice`);
    return { ...previous, [key]: value.slice(eq + 1) };
  };
}

/** Parse a positive integer option, naming the flag on error. */
export function positiveInt(flag: string, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value))
      throw new AirlockError('invalid_args', `${flag}: expected a whole number, got ${JSON.stringify(value)}`);
    const n = Number.parseInt(value, 10);
    if (n < 1 || n > max) throw new AirlockError('invalid_args', `${flag}: must be between 1 and ${max}, got ${n}`);
    return n;
  };
}

/** The runner config from `--config FILE`, `$AIRLOCK_RUNNER_CONFIG`, or the defaults. */
export function runnerConfigFrom(opts: { config?: string }): RunnerConfig {
  const fromEnv = process.env['AIRLOCK_RUNNER_CONFIG'];
  return loadRunnerConfig(opts.config ?? (fromEnv === '' ? undefined : fromEnv));
}

/** Print data as JSON or through a human formatter. */
export function emit(json: boolean, data: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : human());
}
