// Test support for other packages' tests (`@airlock/server/testing`): databases, keys, servers.
export { type TestDb, testDatabases } from './databases.js';
export { apiClient, mintTestKey, ownerId } from './keys.js';
export { startTestServer, type TestServer } from './server.js';
