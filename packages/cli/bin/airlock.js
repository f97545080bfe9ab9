#!/usr/bin/env node
// The installed `airlock` command. A committed shim (not a build output) so that npm links
// it at install time, before the first build; it loads the compiled CLI.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write(
    'airlock: the CLI is not built yet; run "npm run build" (or "npm start") in the airlock folder first\n',
  );
  process.exit(70);
}
// A closed pipe (`airlock … | head`) ends the command quietly, like other Unix tools.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv);
