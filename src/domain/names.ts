import { z } from 'zod';

/** Control characters (C0, DEL, C1) and NUL: refused in every name (Postgres cannot store NUL in text). */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** A branch's name (create, rename, import). */
export function branchName() {
  return resourceName(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'letters, digits, ".", "_", "/" and "-" only, starting with a letter or digit');
}

/** A user-chosen name: trimmed, 1–64 characters, no control characters, then the resource's own rule. */
export function resourceName(pattern?: RegExp, rule?: string) {
  const base = z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(64, 'must be at most 64 characters')
    .refine((s) => !CONTROL_CHARS.test(s), { message: 'must not contain control characters' });
  return pattern ? base.refine((s) => pattern.test(s), { message: rule ?? 'invalid name' }) : base;
}
