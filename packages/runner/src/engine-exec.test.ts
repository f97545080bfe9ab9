// The whole engine suite again on the fallback path (setpriv/prlimit through child_process),
// used where the spawn helper cannot be built. Each test file runs in its own process.
process.env['AIRLOCK_SPAWNER'] = 'exec';
await import('./engine.test.js');
