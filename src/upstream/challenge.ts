// A parser for `WWW-Authenticate` (RFC 9110 §11.6.1): one or more challenges per header value, each a
// scheme followed by a token68 or by comma-separated `name=value` parameters whose values may be quoted
// strings containing commas and escapes. The npm parsers we looked at either reject parameters outside
// RFC 6750 (Bearer `service`) or only read one challenge per header, so this small one is ours.

export interface Challenge {
  /** Lower-cased: `bearer`, `basic`, … */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Record<string, string>;
  token68?: string;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;
const TOKEN68_CHAR = /[A-Za-z0-9._~+/-]/;
const UNQUOTED_VALUE_CHAR = /[^,\s"]/;

class Cursor {
  readonly text: string;
  at = 0;
  constructor(text: string) {
    this.text = text;
  }
  get done(): boolean {
    return this.at >= this.text.length;
  }
  peek(): string {
    return this.text[this.at] ?? '';
  }
  skipWhitespace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.at++;
  }
  skipSeparators(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === ',') this.at++;
  }
  read(pattern: RegExp): string {
    const start = this.at;
    while (!this.done && pattern.test(this.peek())) this.at++;
    return this.text.slice(start, this.at);
  }
  quoted(): string {
    let value = '';
    this.at++; // opening quote
    while (!this.done) {
      const char = this.text[this.at++];
      if (char === '"') return value;
      value += char === '\\' && !this.done ? this.text[this.at++] : char;
    }
    return value; // unterminated: take what there is
  }
}

/** `name = value` at the cursor, or null (cursor unchanged) when what follows is not a parameter. */
function readParam(cursor: Cursor): [string, string] | null {
  const start = cursor.at;
  const name = cursor.read(TOKEN_CHAR);
  cursor.skipWhitespace();
  if (name === '' || cursor.peek() !== '=') {
    cursor.at = start;
    return null;
  }
  cursor.at++;
  cursor.skipWhitespace();
  // `name=` followed by `=`, `,` or the end is a token68 with padding, not a parameter.
  if (cursor.done || cursor.peek() === '=' || cursor.peek() === ',') {
    cursor.at = start;
    return null;
  }
  // Unquoted values should be tokens; registries write unquoted URLs too, so read up to the next separator.
  const value = cursor.peek() === '"' ? cursor.quoted() : cursor.read(UNQUOTED_VALUE_CHAR);
  return [name.toLowerCase(), value];
}

function readChallenge(cursor: Cursor): Challenge | null {
  const scheme = cursor.read(TOKEN_CHAR);
  if (scheme === '') {
    cursor.at++; // not a token: skip the stray character
    return null;
  }
  const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
  cursor.skipWhitespace();
  if (cursor.done || cursor.peek() === ',') return challenge;

  const first = readParam(cursor);
  if (!first) {
    const start = cursor.at;
    const token68 = cursor.read(TOKEN68_CHAR) + cursor.read(/=/);
    cursor.skipWhitespace();
    if (token68 !== '' && (cursor.done || cursor.peek() === ',')) challenge.token68 = token68;
    else cursor.at = start;
    return challenge;
  }
  challenge.params[first[0]] = first[1];
  for (;;) {
    const beforeSeparator = cursor.at;
    cursor.skipWhitespace();
    if (cursor.peek() !== ',') {
      cursor.at = beforeSeparator;
      return challenge;
    }
    cursor.skipSeparators();
    const param = readParam(cursor);
    // Not a parameter: the next challenge starts here.
    if (!param) return challenge;
    challenge.params[param[0]] = param[1];
  }
}

/** Every challenge of one or more `WWW-Authenticate` header values, in order. */
export function parseChallenges(header: string | string[] | undefined | null): Challenge[] {
  const values = Array.isArray(header) ? header : header ? [header] : [];
  const challenges: Challenge[] = [];
  for (const value of values) {
    const cursor = new Cursor(value);
    while (!cursor.done) {
      cursor.skipSeparators();
      if (cursor.done) break;
      const challenge = readChallenge(cursor);
      if (challenge) challenges.push(challenge);
    }
  }
  return challenges;
}
