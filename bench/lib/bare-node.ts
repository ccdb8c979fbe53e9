// The machine's gauge for the manifest rates (issue 19): a bare node:http server (no framework, no auth,
// no log) answering fixed manifest bytes, run by the same Node as Manifold. The target
// (10,000 req/s) was set when this answered about 63,000; on this virtual machine the rate of one
// process moves by 2× between hours, so the report prints it beside Manifold's.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, spawnLogged, stopProcess, waitForHttp } from './processes.ts';
import type { LoggedProcess } from './processes.ts';

/** What it answered (req/s, 16 connections) when the issue set the 10,000 req/s target. */
export const RATE_WHEN_TARGET_SET = 63_000;

const SERVER = `
const body = require('node:fs').readFileSync(process.argv[1]);
const headers = { 'content-type': process.argv[2], 'content-length': body.length };
require('node:http').createServer((request, response) => { response.writeHead(200, headers); response.end(body); })
  .listen(Number(process.argv[3]), '127.0.0.1');
`;

export class BareNodeServer {
  readonly url: string;
  readonly #process: LoggedProcess;

  private constructor(url: string, started: LoggedProcess) {
    this.url = url;
    this.#process = started;
  }

  /** Serves `body` as `contentType` at every path. */
  static async start(body: Buffer, contentType: string, workDir: string): Promise<BareNodeServer> {
    const bodyFile = path.join(workDir, 'bare-node-body');
    writeFileSync(bodyFile, body);
    const port = await freePort();
    const started = spawnLogged(process.execPath, ['-e', SERVER, bodyFile, contentType, String(port)], path.join(workDir, 'bare-node.log'));
    const url = `http://127.0.0.1:${port}`;
    await waitForHttp(url, started);
    return new BareNodeServer(url, started);
  }

  stop(): Promise<void> {
    return stopProcess(this.#process);
  }
}
