import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { randomToken } from '../../src/domain/ids';

/**
 * What every test stack starts from: a tag, its own catalog database on the suite's shared
 * control Postgres, its own data dir and owner key.
 */
export async function isolatedStackBase(kind: 'stack' | 'proc') {
  const tag = randomToken(8);
  const base = process.env.LAMPION_TEST_CONTROL_URL!;
  const admin = new Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE lampion_${tag}`);
  await admin.end();
  const dataDir = path.join(process.env.LAMPION_TEST_ROOT!, `${kind}-${tag}`);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  return { tag, base, dataDir, databaseUrl: base.replace(/\/lampion$/, `/lampion_${tag}`), ownerKey: `lmp_live_${randomToken(32)}` };
}
