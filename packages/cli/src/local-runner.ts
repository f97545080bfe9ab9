import { userInfo } from 'node:os';
import {
  ActionEngine,
  type Catalog,
  loadCatalog,
  type Principal,
  type RunnerConfig,
  SecurityLog,
} from '@airlock/runner';

/** A runner engine in this process, for local verbs (`action run`, `pack test`). */
export interface LocalRunner {
  readonly config: RunnerConfig;
  readonly catalog: Catalog;
  readonly engine: ActionEngine;
  readonly log: SecurityLog;
}

/** Load the configured packs and open the security log, like a runner does at start. */
export function openLocalRunner(config: RunnerConfig): LocalRunner {
  const catalog = loadCatalog(config.packDirs);
  const log = new SecurityLog(config.logPath);
  return { config, catalog, log, engine: new ActionEngine(catalog, config, log) };
}

/** The principal of a local CLI user. */
export function localPrincipal(): Principal {
  let name = 'unknown';
  try {
    name = userInfo().username;
  } catch {
    // no passwd entry (containers); keep "unknown"
  }
  return { type: 'local', id: name };
}
