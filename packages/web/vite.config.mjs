// Vite build of the dashboard: app/ → dist/app/ (served by `airlock server` at /).
// `npm run dev -w packages/web` serves it with the API proxied to a local control plane.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const api = process.env.AIRLOCK_URL ?? 'http://127.0.0.1:7700';

export default defineConfig({
  root: `${here}app`,
  base: '/',
  publicDir: false,
  logLevel: 'warn',
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: `${here}dist/app`,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 800,
  },
  server: { proxy: { '/api': { target: api, changeOrigin: false }, '/healthz': api } },
});
