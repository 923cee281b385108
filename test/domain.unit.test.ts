import { randomBytes } from 'node:crypto';
import { API_KEY_RE, displayPrefix, generateApiKey, hashApiKey, parseBearer, expiryFrom } from '../src/domain/apiKeys';
import { hasRole, isAllowed, POLICY, ROLES } from '../src/domain/rbac';
import { newId, idPattern, randomToken } from '../src/domain/ids';
import { decryptSecret, encryptSecret, generatePassword } from '../src/domain/secrets';
import { proxyConnectionString } from '../src/domain/connectionString';
import { loadConfig } from '../src/config';
import { renderRuntimeConf } from '../src/engine/cluster';

describe('api keys', () => {
  it('generates lmp_live_ keys of 32 characters and hashes them stably', () => {
    const k = generateApiKey();
    expect(k).toMatch(API_KEY_RE);
    expect(generateApiKey()).not.toBe(k);
    expect(hashApiKey(k)).toBe(hashApiKey(k));
    expect(hashApiKey(k)).not.toContain(k.slice(9));
    expect(displayPrefix(k)).toBe(`${k.slice(0, 13)}...`);
  });
  it('parses bearer headers', () => {
    expect(parseBearer('Bearer abc')).toBe('abc');
    expect(parseBearer('bearer  abc ')).toBe('abc');
    expect(parseBearer('Basic abc')).toBeUndefined();
    expect(parseBearer(undefined)).toBeUndefined();
  });
  it('expires after the given days', () => {
    expect(expiryFrom(new Date('2026-01-01T00:00:00Z'), 90).toISOString()).toBe('2026-04-01T00:00:00.000Z');
  });
});

describe('rbac', () => {
  it('orders roles analyst < viewer < developer < admin < owner', () => {
    expect(ROLES).toEqual(['analyst', 'viewer', 'developer', 'admin', 'owner']);
    expect(hasRole('owner', 'admin')).toBe(true);
    expect(hasRole('viewer', 'developer')).toBe(false);
  });
  it('decides from the one policy table', () => {
    expect(isAllowed('viewer', 'project.read')).toBe(true);
    expect(isAllowed('viewer', 'project.create')).toBe(false);
    expect(isAllowed('developer', 'project.delete')).toBe(false);
    expect(isAllowed('admin', 'project.delete')).toBe(true);
    for (const action of Object.keys(POLICY) as (keyof typeof POLICY)[]) expect(isAllowed('owner', action)).toBe(true);
  });
});

describe('ids and secrets', () => {
  it('makes DNS-safe prefixed ids', () => {
    const id = newId('endpoint');
    expect(id).toMatch(idPattern('endpoint'));
    expect(id).toMatch(/^ep-[a-z0-9]{12}$/);
    expect(randomToken(50)).toHaveLength(50);
  });
  it('seals passwords with AES-GCM and detects tampering', () => {
    const key = randomBytes(32);
    const pw = generatePassword();
    const sealed = encryptSecret(pw, key);
    expect(sealed).not.toContain(pw);
    expect(decryptSecret(sealed, key)).toBe(pw);
    const parts = sealed.split(':');
    parts[3] = Buffer.from('tampered').toString('base64');
    expect(() => decryptSecret(parts.join(':'), key)).toThrow();
    expect(() => decryptSecret(sealed, randomBytes(32))).toThrow();
  });
  it('builds the proxy connection string with the endpoint in the database name', () => {
    expect(proxyConnectionString({ user: 'cloud_admin', password: 'p@ss', host: 'db.example', port: 5432, endpointId: 'ep-abc' })).toBe(
      'postgresql://cloud_admin:p%40ss@db.example:5432/ep-abc.postgres?sslmode=require',
    );
    expect(proxyConnectionString({ user: 'u', password: 'p', host: '::1', port: 1, endpointId: 'ep-x', database: 'app' })).toBe(
      'postgresql://u:p@[::1]:1/ep-x.app?sslmode=require',
    );
  });
});

describe('config', () => {
  it('has defaults that avoid 5432, 7233 and 8233', () => {
    const c = loadConfig({});
    expect([c.controlDbPort, c.temporalPort, c.temporalUiPort]).not.toEqual(expect.arrayContaining([5432, 7233, 8233]));
    expect(c.regions).toEqual(['local']);
    expect(c.proxyRequireTls).toBe(true);
  });
  it('rejects bad values with the variable named', () => {
    expect(() => loadConfig({ LAMPION_API_PORT: 'abc' })).toThrow(/LAMPION_API_PORT/);
    expect(() => loadConfig({ LAMPION_BOOTSTRAP_API_KEY: 'lmp_live_short' })).toThrow(/LAMPION_BOOTSTRAP_API_KEY/);
    expect(() => loadConfig({ LAMPION_COMPUTE_PORT_MIN: '9000', LAMPION_COMPUTE_PORT_MAX: '8000' })).toThrow(/PORT_MIN/);
  });
});

describe('compute runtime settings', () => {
  it('loads pg_stat_statements and the guard, listens on loopback, archives WAL per branch', () => {
    const conf = renderRuntimeConf(
      { major: 15, binDir: '/x', guardLibrary: '/opt/lampion_guard.so' },
      { port: 56001, socketDir: '/d/sock', walArchiveDir: "/d/wal/br-1'x" },
    );
    expect(conf).toContain("listen_addresses = '127.0.0.1'");
    expect(conf).toContain('port = 56001');
    expect(conf).toContain("shared_preload_libraries = 'pg_stat_statements,/opt/lampion_guard.so'");
    expect(conf).toContain("recovery_init_sync_method = 'syncfs'");
    expect(conf).toContain("wal_level = 'replica'");
    // Postgres's own basic_archive, no shell command; a quote in a path cannot end the conf string.
    expect(conf).toContain("archive_library = 'basic_archive'");
    expect(conf).toContain("basic_archive.archive_directory = '/d/wal/br-1''x'");
    expect(conf).not.toContain('archive_command');
  });
});

describe('LSN math', () => {
  const { compareLsn, normalizeLsn, walFileName, isLsn } = jest.requireActual('../src/domain/lsn') as typeof import('../src/domain/lsn');
  it('orders LSNs numerically, not as text', () => {
    expect(compareLsn('0/9FFFFFF', '0/A000000')).toBe(-1);
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBe(1);
    expect(compareLsn('16/b374d848', '16/B374D848')).toBe(0);
    expect(normalizeLsn('0016/00B374D8')).toBe('16/B374D8');
  });
  it('names the WAL file that holds an LSN as pg_walfile_name does', () => {
    expect(walFileName(1, '0/16EF4E8')).toBe('000000010000000000000001');
    expect(walFileName(2, '1/FF000000')).toBe('0000000200000001000000FF');
    expect(walFileName(1, '0/20208B0')).toBe('000000010000000000000002');
  });
  it('refuses what is not an LSN', () => {
    for (const bad of ['', '0', '0/', '/1', '0/1/2', 'G/1', '0/123456789', "0/1'; DROP"]) expect(isLsn(bad)).toBe(false);
  });
});

import { computeHours, periodBounds, usagePeriod } from '../src/domain/usage';

describe('usage: CU-weighted compute hours', () => {
  const h = (iso: string) => new Date(`2026-03-${iso}Z`);
  const bounds = periodBounds('2026-03');
  it('counts running intervals, clipped to the period, weighted by the size at each event', () => {
    const events = [
      { endpointId: 'a', event: 'start' as const, at: new Date('2026-02-28T23:00:00Z'), computeCu: 1 },
      { endpointId: 'a', event: 'suspend' as const, at: h('01T01:00:00'), computeCu: 1 },
      { endpointId: 'a', event: 'resume' as const, at: h('02T00:00:00'), computeCu: 1 },
      { endpointId: 'a', event: 'resize' as const, at: h('02T01:00:00'), computeCu: 2 },
      { endpointId: 'a', event: 'stop' as const, at: h('02T02:00:00'), computeCu: 2 },
      { endpointId: 'b', event: 'start' as const, at: h('31T23:00:00'), computeCu: null },
    ];
    const r = computeHours(events, bounds, new Date('2026-04-02T00:00:00Z'), () => 0.25);
    // a: 1 h (clipped) + 1 h at 1 CU + 1 h at 2 CU; b: 1 h to the period's end at its current 0.25.
    expect(r.hours).toBeCloseTo(4, 6);
    expect(r.cuHours).toBeCloseTo(1 + 1 + 2 + 0.25, 6);
  });
  it('an open interval counts to now within the current period', () => {
    const r = computeHours([{ endpointId: 'a', event: 'start', at: h('10T00:00:00'), computeCu: 0.5 }], bounds, h('10T06:00:00'), () => 1);
    expect(r).toEqual({ cuHours: 3, hours: 6 });
  });
  it('periods are UTC months', () => {
    expect(usagePeriod(new Date('2026-12-31T23:59:59Z'))).toBe('2026-12');
    expect(periodBounds('2026-12')).toEqual({ start: new Date('2026-12-01T00:00:00Z'), end: new Date('2027-01-01T00:00:00Z') });
  });
});

import { dataLayers } from '../src/domain/residency';

describe('residency layers say only what the deployment does', () => {
  it('TLS optional is said, not hidden; nothing is claimed encrypted at rest', () => {
    const l = dataLayers({ hostId: 'h1', dataDir: '/d', storageDriver: 'btrfs', proxyRequireTls: false, externalCatalog: true });
    expect(l.find((x) => x.layer === 'compute')).toMatchObject({ encrypted_in_transit: false, in_transit: expect.stringMatching(/not required/) });
    expect(l.find((x) => x.layer === 'catalog')).toMatchObject({ encrypted_in_transit: false, in_transit: expect.stringMatching(/not checked/) });
    expect(l.every((x) => !x.encrypted_at_rest)).toBe(true);
    expect(l.find((x) => x.layer === 'branch_storage')!.location).toBe('/d/branches on host h1 (btrfs driver)');
  });
});
