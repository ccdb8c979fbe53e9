// Builds the console into dist/console: index.html (served at `/`) and content-hashed assets under
// /console/assets/, each with a gzip copy beside it that the server sends to clients that accept gzip.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';
import type { Plugin } from 'vite';

const root = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(root, '../dist/console');

function gzipCopies(): Plugin {
  return {
    name: 'manifold-gzip-copies',
    apply: 'build',
    closeBundle() {
      const assets = path.join(outDir, 'assets');
      for (const file of readdirSync(assets)) {
        if (/\.(js|css|svg)$/.test(file)) writeFileSync(path.join(assets, `${file}.gz`), gzipSync(readFileSync(path.join(assets, file)), { level: 9 }));
      }
      writeFileSync(path.join(outDir, 'index.html.gz'), gzipSync(readFileSync(path.join(outDir, 'index.html')), { level: 9 }));
    },
  };
}

export default defineConfig({
  root,
  base: '/console/',
  plugins: [preact(), gzipCopies()],
  build: { outDir, emptyOutDir: true, assetsDir: 'assets', sourcemap: false, modulePreload: { polyfill: false } },
  logLevel: 'warn',
});
