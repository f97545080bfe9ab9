import { AIRLOCK_VERSION, PROTOCOL_VERSION } from '@airlock/core';
import type { Catalog } from './catalog.js';
import type { RunnerConfig } from './config.js';

/** What a runner advertises in its `hello`: identity, version, packs with hashes, capabilities. */
export interface RunnerState {
  readonly runner: { readonly name: string };
  readonly version: string;
  readonly protocol: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly capabilities: readonly string[];
  readonly packs: readonly {
    readonly name: string;
    readonly version: string;
    readonly hash: string;
    readonly dir: string;
    readonly trusted: 'pinned' | 'mismatch' | 'unpinned';
    readonly actions: readonly { readonly id: string; readonly title: string; readonly risk: string }[];
  }[];
  readonly failures: readonly { readonly dir: string; readonly errors: readonly string[] }[];
  readonly log: string;
}

/** Build the runner's advertised state from its config and catalog. */
export function runnerState(config: RunnerConfig, catalog: Catalog): RunnerState {
  return {
    runner: { name: config.name },
    version: AIRLOCK_VERSION,
    protocol: PROTOCOL_VERSION,
    labels: config.labels,
    capabilities: ['actions'],
    packs: catalog.packs.map(({ pack, dir }) => {
      const pin = config.trusted[pack.name];
      return {
        name: pack.name,
        version: pack.version,
        hash: pack.hash,
        dir,
        trusted: pin === undefined ? 'unpinned' : pin === pack.hash ? 'pinned' : 'mismatch',
        actions: pack.actions.map((a) => ({ id: a.id, title: a.title, risk: a.risk })),
      };
    }),
    failures: catalog.failures,
    log: config.logPath,
  };
}
