import type Koa from 'koa';
import { z } from 'zod';

/** Plain decimal digits only: "", "0x10", "1e3" and " 5" are refused, not coerced. */
const decimal = (min: number, max: number | undefined, dflt: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, 'must be a decimal integer')
    .transform(Number)
    .pipe(max === undefined ? z.number().int().min(min) : z.number().int().min(min).max(max))
    .optional()
    .transform((v) => v ?? dflt);

/** ?limit=&offset= on every list route. */
export const pagination = z.object({
  limit: decimal(1, 100, 50),
  offset: decimal(0, undefined, 0),
});

export type Page = z.infer<typeof pagination>;

/** One page of a list: the rows as the body, the total in X-Total-Count. */
export function answerPage<T>(ctx: Koa.Context, total: number, rows: T[]): void {
  ctx.set('X-Total-Count', String(total));
  ctx.body = rows;
}

/** The one "empty PATCH" rule: a PATCH body must change something. */
export function nonEmptyPatch<S extends z.ZodRawShape>(schema: z.ZodObject<S>) {
  return schema.strict().refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'nothing to update' });
}
