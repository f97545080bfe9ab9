export { type AirlockServer, createServer } from './app.js';
export { parseListen, serverConfig } from './config.js';
export type { ServerConfig, ServerContext } from './context.js';
export { type Db, openDatabase } from './db/database.js';
export { ensureLocalApiKey, ensureLocalRunnerToken, trustPackHashes } from './local/local-setup.js';
