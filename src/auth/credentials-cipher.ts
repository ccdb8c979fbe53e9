// Upstream credentials at rest (DESIGN §5): AES-256-GCM with the instance key. Stored form:
// `v1:` + base64(iv | tag | ciphertext). The version names the key, so a later key rotation can keep
// decrypting `v1:` values while encrypting new ones under `v2:`.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const ALGORITHM = 'aes-256-gcm';
const VERSION = 'v1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class CredentialsCipher {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`the credentials key must be ${KEY_BYTES} bytes, got ${key.length}`);
    this.#key = Buffer.from(key);
  }

  encrypt(plain: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.#key, iv, { authTagLength: TAG_BYTES });
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`;
  }

  /** Throws on an unknown version, a malformed value or a failed authentication: none is expected. */
  decrypt(stored: string): string {
    const separator = stored.indexOf(':');
    const version = separator < 0 ? '' : stored.slice(0, separator);
    if (version !== VERSION) throw new Error('stored credentials have an unknown key version');
    const data = Buffer.from(stored.slice(separator + 1), 'base64');
    if (data.length < IV_BYTES + TAG_BYTES) throw new Error('stored credentials are truncated');
    const decipher = createDecipheriv(ALGORITHM, this.#key, data.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(data.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    // final() throws when the tag does not authenticate the ciphertext (tampering or another key).
    return Buffer.concat([decipher.update(data.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  }
}
