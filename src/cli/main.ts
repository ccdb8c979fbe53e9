#!/usr/bin/env node
// `manifold`: serve, migrate, and the operator's admin tasks.
import { flushCompileCache } from 'node:module';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.ts';
import { createManifold, migrateDatabase } from '../server.ts';
import { QuietRelease, collectAndRelease } from '../memory-release.ts';
import { dropSpareBuffers } from '../storage/object-stream.ts';
import { purgeExpiredEverywhere } from '../lib/bounded-cache.ts';
import { warmUp } from '../warm-up.ts';
import { ADMIN_COMMANDS, ADMIN_USAGE, runAdmin } from './admin.ts';

const USAGE = `usage: manifold <command>

commands:
  serve     start the server (runs migrations first)
  migrate   run database migrations and exit

${ADMIN_USAGE}

Configuration comes from MANIFOLD_CONFIG (a YAML file) and MANIFOLD_* environment variables; see README.md.`;

async function serve(): Promise<void> {
  const config = loadConfig();
  const manifold = await createManifold(config);
  // Memory given back after busy periods (src/memory-release.ts): checked every half second, released after
  // a second below 3 % of the event loop, so within a second or two of a load's end, once the resident
  // memory grew by 4 MB (with 8 MB, a manifest load that left 6 MB more kept them: a 3-minute soak ended at
  // 114 MB against 108 with 4). Before it collects, the spare read buffers and the in-memory caches' expired
  // entries (a scan's 404s and unknown names) are let go.
  const beforeCollect = () => {
    dropSpareBuffers();
    purgeExpiredEverywhere();
  };
  const release = new QuietRelease({ intervalMs: 500, growthBytes: 4_000_000, quietUtilization: 0.03, quietIntervals: 2, beforeCollect, logger: manifold.logger });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    manifold.logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      manifold.logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, config.server.shutdownTimeoutSeconds * 1000);
    timer.unref();
    await release.stop();
    await manifold.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // The first pull after a start should not pay for compiling the pull path (src/warm-up.ts).
  const warmUpMs = await warmUp(manifold);
  manifold.logger.info({ ms: Math.round(warmUpMs) }, 'warmed up');
  // The garbage of the start (module loading, migrations, the warm-up) given back before the first request.
  collectAndRelease();
  // The peer listener first: a replica that takes client requests may own fills the others stream.
  await manifold.peer?.listen({ host: config.cluster.host, port: config.cluster.port });
  await manifold.app.listen({ host: config.server.host, port: config.server.port });
  // With NODE_COMPILE_CACHE set (`npm start`), write the cache now rather than at exit, so that even a
  // killed first process spares the next start the type stripping (about 30 MB resident) and compiling.
  flushCompileCache();
  release.start();
}

async function migrate(): Promise<void> {
  console.log(`migrated (${await migrateDatabase(loadConfig())})`);
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { serve, migrate };

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  const [noun, ...args] = process.argv.slice(2);
  if (noun && ADMIN_COMMANDS.includes(noun)) {
    const io = { stdout: (text: string) => process.stdout.write(text), stderr: (text: string) => process.stderr.write(text), readStdin };
    process.exitCode = await runAdmin(noun, args, io);
    return;
  }
  const { positionals } = parseArgs({ allowPositionals: true, strict: false });
  const [command, ...rest] = positionals;
  const run = command ? COMMANDS[command] : undefined;
  if (!run) {
    console.error(USAGE);
    process.exit(command ? 2 : 0);
  }
  await run(rest);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(error.message);
  } else {
    console.error(`manifold: ${(error as Error).stack ?? String(error)}`);
  }
  process.exit(1);
});
