export { type AirlockServer, createServer } from './app.js';
export { type BackupOutcome, backupSqlite, checkSqliteFile, restoreSqlite } from './backup/sqlite-backup.js';
export { describeServerConfig, parseListen, redactDatabaseUrl, serverConfig } from './config.js';
export type { ServerConfig, ServerContext } from './context.js';
export { type Db, openDatabase } from './db/database.js';
export { ensureLocalApiKey, ensureLocalRunnerToken, trustPackHashes } from './local/local-setup.js';
export { type DatabaseProbe, probeDatabase } from './observability/database-probe.js';
export { readiness } from './observability/routes.js';
