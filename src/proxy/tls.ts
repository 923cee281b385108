import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const SELF_SIGNED_SUBJECT_ALT_NAMES = 'DNS:localhost,DNS:*.localhost,IP:127.0.0.1,IP:::1';

/**
 * The proxy's TLS key pair. Explicit files (an operator's real certificate) win; otherwise a
 * self-signed pair under `dir` is reused across restarts, so clients that pinned it keep working,
 * and created on first start.
 */
export async function loadOrCreateTls(
  dir: string,
  certFile?: string,
  keyFile?: string,
): Promise<{ key: string; cert: string }> {
  if (certFile !== undefined || keyFile !== undefined) {
    if (certFile === undefined || keyFile === undefined) {
      throw new Error('TLS certificate and key files must be given together');
    }
    return checked(await readPair(certFile, keyFile), `${certFile} / ${keyFile}`);
  }

  const certPath = path.join(dir, 'proxy.crt');
  const keyPath = path.join(dir, 'proxy.key');
  const existing = await readPair(certPath, keyPath).catch((err: NodeJS.ErrnoException) => {
    // A half-present pair (crash between the two renames) is regenerated, anything else is fatal.
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (existing) return checked(existing, `${certPath} / ${keyPath}`);

  await mkdir(dir, { recursive: true });
  // Generated under temporary names and renamed into place, so a crash mid-way never leaves a
  // truncated file that would be "reused" on the next start.
  const tag = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmpCert = certPath + tag;
  const tmpKey = keyPath + tag;
  try {
    await execFileAsync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        tmpKey,
        '-out',
        tmpCert,
        '-subj',
        '/CN=lampion-proxy',
        '-addext',
        `subjectAltName=${SELF_SIGNED_SUBJECT_ALT_NAMES}`,
        '-days',
        '3650',
      ],
      { timeout: 30_000 },
    );
    await chmod(tmpKey, 0o600);
    const pair = checked(await readPair(tmpCert, tmpKey), 'generated certificate');
    await rename(tmpKey, keyPath);
    await rename(tmpCert, certPath);
    return pair;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT' && e.syscall === 'spawn openssl') {
      throw new Error('cannot generate the proxy TLS certificate: the openssl command is not installed');
    }
    if (e.stderr) throw new Error(`openssl failed to generate the proxy TLS certificate: ${e.stderr.trim()}`);
    throw err;
  } finally {
    await rm(tmpKey, { force: true });
    await rm(tmpCert, { force: true });
  }
}

async function readPair(certFile: string, keyFile: string): Promise<{ key: string; cert: string }> {
  const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  return { key, cert };
}

/** Fails at startup, with the file names, rather than at the first client handshake. */
function checked(pair: { key: string; cert: string }, what: string): { key: string; cert: string } {
  try {
    tls.createSecureContext(pair);
  } catch (err) {
    throw new Error(`invalid TLS key pair (${what}): ${(err as Error).message}`);
  }
  return pair;
}
