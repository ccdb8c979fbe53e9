// JSON logs (pino). Secrets never reach a log line: credentials and tokens are redacted by key.
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export const REDACTED_KEYS = ['password', 'password_encrypted', 'token', 'authorization', 'secret', 'plaintext', 'access_token', 'cookie', 'private-token'];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const paths = REDACTED_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`, `req.headers["${key}"]`]);
  return pino({ level, redact: { paths, censor: '[redacted]' }, base: undefined }, destination);
}
