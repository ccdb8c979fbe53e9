// Instance keys: the secret that encrypts upstream credentials and the key that signs registry tokens.
// Given in configuration, or created once in the data directory (several replicas must share them:
// configure them explicitly there).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { exportPKCS8, exportSPKI, generateKeyPair, importPKCS8, importSPKI } from 'jose';
import type { CryptoKey } from 'jose';

export const SIGNING_ALGORITHM = 'ES256';

/** Writes a file that must not exist yet (`wx`), so two processes starting at once keep one key. */
function createOnce(file: string, contents: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, contents, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

export function loadEncryptionKey(configured: string | undefined, file: string): Buffer {
  if (configured) return Buffer.from(configured, 'base64');
  if (!existsSync(file)) createOnce(file, randomBytes(32).toString('base64') + '\n');
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new Error(`${file} must hold 32 bytes, base64`);
  return key;
}

export interface SigningKeys {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** Key id in the JWT header: the first bytes of the public key's digest. */
  keyId: string;
}

export async function loadSigningKeys(file: string): Promise<SigningKeys> {
  if (!existsSync(file)) {
    const { privateKey } = await generateKeyPair(SIGNING_ALGORITHM, { extractable: true });
    createOnce(file, await exportPKCS8(privateKey));
  }
  const pem = readFileSync(file, 'utf8');
  const privateKey = await importPKCS8(pem, SIGNING_ALGORITHM, { extractable: true });
  const publicPem = createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' }).toString();
  const publicKey = await importSPKI(publicPem, SIGNING_ALGORITHM);
  const keyId = createHash('sha256').update(await exportSPKI(publicKey)).digest('hex').slice(0, 16);
  return { privateKey, publicKey, keyId };
}
