// Test support (not shipped, excluded from the no-listen scan): a loopback port that was
// free a moment ago, for servers that tests start.
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise<number>((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
      srv.close(() => (port > 0 ? resolvePort(port) : reject(new Error('no port'))));
    });
  });
}
