// One control-plane instance for bench/load.bench.mjs, as its own process (so its memory is
// measured alone): the same createServer the `airlock server` command runs, without the CLI.
// Usage: node bench/load-server.mjs HOST:PORT DATABASE HOME
import { createServer, serverConfig } from '../packages/server/dist/index.js';

const [listen, database, home] = process.argv.slice(2);
const server = await createServer(serverConfig({ listen, database, home, logLevel: 'warn' }));
const url = await server.listen();
process.stdout.write(`listening on ${url}\n`);
const stop = () => {
  server.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
