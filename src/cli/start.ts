import { loadConfig, ConfigError } from '../config';
import { Stack, Roles, ALL_ROLES } from '../stack/stack';

/**
 * `npm start` runs every role; --role=api, --role=worker,proxy … split them across processes
 * (docker-compose). The proxy reaches computes on loopback, so it runs beside the host worker.
 */
function parseRoles(argv: string[]): Roles {
  const arg = argv.find((a) => a.startsWith('--role='));
  const names = (arg?.slice('--role='.length) ?? 'all').split(',').filter(Boolean);
  if (names.includes('all')) return ALL_ROLES;
  const unknown = names.filter((n) => !['api', 'worker', 'proxy'].includes(n));
  if (unknown.length || names.length === 0) throw new ConfigError(`unknown --role=${unknown.join(',')}; use all, or a comma list of api, worker, proxy`);
  return { api: names.includes('api'), worker: names.includes('worker'), proxy: names.includes('proxy') };
}

async function main() {
  // The single-machine start puts branch data on copy-on-write storage unless told not to.
  const config = loadConfig({ LAMPION_AUTO_BTRFS: 'true', ...process.env });
  const roles = parseRoles(process.argv.slice(2));
  const stack = await Stack.start(config, roles);
  const lines = ['', 'Lampion is running. Ctrl-C stops everything.'];
  if (roles.api) {
    lines.push(`  API           http://${config.publicHost}:${stack.apiPort}/v1   (health: /health, OpenAPI: /v1/openapi.json, docs: /docs)`);
  }
  if (roles.proxy) lines.push(`  Proxy         ${config.publicHost}:${stack.proxyPort}   (Postgres wire protocol, TLS)`);
  lines.push(`  Temporal      ${stack.temporalAddress}   namespace ${config.temporalNamespace}`);
  if (stack.temporalUiUrl) lines.push(`  Temporal UI   ${stack.temporalUiUrl}/namespaces/${config.temporalNamespace}/workflows`);
  lines.push(`  Data dir      ${config.dataDir}`);
  if (stack.firstOwnerKey) {
    lines.push('', `  Owner API key (shown once; store it now): ${stack.firstOwnerKey}`);
    lines.push(`  Try: curl -H "Authorization: Bearer ${stack.firstOwnerKey}" http://${config.publicHost}:${stack.apiPort}/v1/projects`);
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      process.stderr.write('second signal: exiting now\n');
      process.exit(1);
    }
    stopping = true;
    stack.logger.info({ signal }, 'stopping');
    await stack.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`lampion: ${err instanceof ConfigError ? err.message : err?.stack ?? err}\n`);
  process.exit(1);
});
