import path from 'node:path';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config';

/** LAMPION_SECRET_KEY, or a key generated once under the data dir (fine for one machine). */
export function loadSecretKey(config: Config): Buffer {
  if (config.secretKey) return Buffer.from(config.secretKey, 'hex');
  const file = path.join(config.dataDir, 'secret.key');
  try {
    return Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'hex');
  } catch {
    fs.mkdirSync(config.dataDir, { recursive: true });
    const key = randomBytes(32);
    fs.writeFileSync(file, key.toString('hex'), { mode: 0o600, flag: 'wx' });
    return key;
  }
}
