import { z } from 'zod';
import '../zod';
import type { SeedRow } from '../../db';

export const seedSchema = z
  .object({ id: z.string(), name: z.string(), sql: z.string(), position: z.number(), enabled: z.boolean(), created_at: z.string(), updated_at: z.string() })
  .openapi('Seed');

export function seedView(s: SeedRow) {
  return {
    id: s.id,
    name: s.name,
    sql: s.sql,
    position: s.position,
    enabled: s.enabled,
    created_at: new Date(s.created_at).toISOString(),
    updated_at: new Date(s.updated_at).toISOString(),
  } satisfies z.infer<typeof seedSchema>;
}
