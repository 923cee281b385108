import type Koa from 'koa';
import { z } from 'zod';
import './zod';

/** Plain decimal digits only: "", "0x10", "1e3" and " 5" are refused, not coerced. */
const decimal = (min: number, max: number | undefined, dflt: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, 'must be a decimal integer')
    .transform(Number)
    .pipe(max === undefined ? z.number().int().min(min) : z.number().int().min(min).max(max))
    .optional()
    .transform((v) => v ?? dflt);

/** ?limit=&offset= on every list route: default 50, at most 100 a page. */
export const MAX_PAGE = 100;
export const pagination = z.object({
  limit: decimal(1, MAX_PAGE, 50).openapi({ description: `Rows a page: default 50, at most ${MAX_PAGE}` }),
  offset: decimal(0, undefined, 0).openapi({ description: 'Rows skipped' }),
});

/** The same parameters for a time series read by its window (one window is at most 24 h of 30 s snapshots). */
export const MAX_SERIES_PAGE = 5000;
export const seriesPagination = z.object({
  limit: decimal(1, MAX_SERIES_PAGE, MAX_SERIES_PAGE).openapi({ description: `Rows a page: default and at most ${MAX_SERIES_PAGE}` }),
  offset: decimal(0, undefined, 0).openapi({ description: 'Rows skipped' }),
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

/**
 * A list read whole (a small or fixed set, or a database's catalog) answered as one page of the
 * same convention: the slice as the body, the total in X-Total-Count.
 */
export function answerSlice<T>(ctx: Koa.Context, page: Page, rows: readonly T[]): void {
  answerPage(ctx, rows.length, rows.slice(page.offset, page.offset + page.limit));
}
