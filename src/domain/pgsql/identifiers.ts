import { CONTROL_CHARS } from '../names';

/**
 * Names from requests, as stored in the catalog (case-sensitive, no SQL quoting), and the one
 * identifier-quoting and one literal-quoting function every SQL builder uses.
 */

/** Postgres keeps identifiers to NAMEDATALEN - 1 bytes and silently truncates longer ones. */
export const MAX_IDENTIFIER_BYTES = 63;

/** Why a name cannot be an identifier (no control characters, at most 63 bytes), or undefined. */
export function checkIdentifier(s: string, what: string): string | undefined {
  if (s.length === 0) return `${what} must not be empty`;
  if (CONTROL_CHARS.test(s)) return `${what} must not contain control characters`;
  if (new TextEncoder().encode(s).length > MAX_IDENTIFIER_BYTES) return `${what} must be at most ${MAX_IDENTIFIER_BYTES} bytes`;
  if (/\p{Cs}/u.test(s)) return `${what} is not valid Unicode`;
  return undefined;
}

/** An identifier in double quotes: exactly itself, whatever it contains. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A string literal that means exactly the string (E'' never, so backslashes are literal too). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('a literal cannot contain NUL');
  return `'${value.replace(/'/g, "''")}'`;
}
