import { z } from 'zod';
import '../zod';
import type { AnonymizationRulesTable } from '../../db/schema';

export const maskingRuleSchema = z
  .object({ id: z.string(), schema_name: z.string(), table_name: z.string(), column_name: z.string(), masking_function: z.string() })
  .openapi('MaskingRule');

export const anonymizationSchema = z
  .object({
    enabled: z.boolean(),
    analyst_connection_string: z.string().nullable().openapi({ description: 'Connects as lampion_analyst through the proxy; sees only the masked views' }),
    database: z.string().nullable(),
    rules: z.array(maskingRuleSchema),
  })
  .openapi('Anonymization');

export function maskingRuleView(r: Pick<AnonymizationRulesTable, 'id' | 'schema_name' | 'table_name' | 'column_name' | 'masking_function'>) {
  return { id: r.id, schema_name: r.schema_name, table_name: r.table_name, column_name: r.column_name, masking_function: r.masking_function };
}
