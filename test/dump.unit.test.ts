import {
  classifyDumpFailure,
  dumpContentDisposition,
  dumpErrorMessage,
  dumpTablePattern,
  extensionArgs,
  parseTableRef,
  pgDumpCommand,
} from '../src/domain/pgsql/dump';

describe('parseTableRef', () => {
  it.each([
    ['users', { name: 'users' }],
    ['public.users', { schema: 'public', name: 'users' }],
    ['public.a.b', { schema: 'public', name: 'a.b' }],
    ['Users', { name: 'Users' }],
    ['x"; DROP TABLE users; --', { name: 'x"; DROP TABLE users; --' }],
    ['"quoted"."t"', { schema: '"quoted"', name: '"t"' }],
    ['t*', { name: 't*' }],
    ['ünïcode', { name: 'ünïcode' }],
  ])('%j', (input, value) => {
    expect(parseTableRef(input)).toEqual({ ok: true, value });
  });

  it.each([
    ['', 'table must not be empty'],
    ['.t', 'schema must not be empty'],
    ['s.', 'table must not be empty'],
    ['a\u0000b', 'table must not contain control characters'],
    ['a\nb', 'table must not contain control characters'],
    ['s\u0007.t', 'schema must not contain control characters'],
    ['x'.repeat(64), 'table must be at most 63 bytes'],
    ['é'.repeat(32), 'table must be at most 63 bytes'],
  ])('refuses %j', (input, message) => {
    expect(parseTableRef(input)).toEqual({ ok: false, message });
  });

  it('takes 63 bytes, the longest name Postgres keeps', () => {
    expect(parseTableRef('x'.repeat(63)).ok).toBe(true);
  });
});

describe('dumpTablePattern: exactly one table, every character literal', () => {
  it.each([
    [{ name: 'users' }, '"users"'],
    [{ schema: 'public', name: 'users' }, '"public"."users"'],
    [{ name: 'Users' }, '"Users"'],
    [{ name: 'x"; DROP TABLE users; --' }, '"x""; DROP TABLE users; --"'],
    [{ name: 't*' }, '"t*"'],
    [{ name: 'a?b' }, '"a?b"'],
    [{ schema: 'my.schema', name: 'a.b' }, '"my.schema"."a.b"'],
    [{ name: '"' }, '""""'],
    [{ name: '$1 | .* [a-z]+' }, '"$1 | .* [a-z]+"'],
  ])('%j → %s', (ref, pattern) => {
    expect(dumpTablePattern(ref)).toBe(pattern);
  });
});

describe('pgDumpCommand', () => {
  const base = { binDir: '/opt/pg/bin/', major: 18, host: '127.0.0.1', port: 56001, user: 'cloud_admin', password: 's3cr3t-pw', database: 'host=evil dbname=postgres' };

  it('keeps the password and the database off the command line', () => {
    const c = pgDumpCommand(base);
    expect(c.file).toBe('/opt/pg/bin/pg_dump');
    expect(c.args).toEqual(['--format=plain', '--no-password', '--lock-wait-timeout=60000']);
    expect(c.args.join(' ')).not.toContain('s3cr3t-pw');
    expect(c.env).toMatchObject({
      PGHOST: '127.0.0.1',
      PGPORT: '56001',
      PGUSER: 'cloud_admin',
      PGPASSWORD: 's3cr3t-pw',
      // PGDATABASE is never parsed as a connection string, unlike -d.
      PGDATABASE: 'host=evil dbname=postgres',
      PGSSLMODE: 'disable',
      PGCONNECT_TIMEOUT: '10',
      PGPASSFILE: '/dev/null',
      LC_ALL: 'C',
    });
  });

  it('passes a hostile table name as one quoted --table argument', () => {
    const c = pgDumpCommand({ ...base, table: { schema: 'public', name: 'x"; DROP TABLE users; --' } });
    expect(c.args.at(-1)).toBe('--table="public"."x""; DROP TABLE users; --"');
  });
});

describe('extensionArgs: the platform\'s extensions stay out of a whole-database dump', () => {
  const ext = (name: string, builtin = false) => ({ name, builtin });
  const pgss = ext('pg_stat_statements');
  const plpgsql = ext('plpgsql', true);

  it('excludes them by name from pg_dump 17', () => {
    expect(extensionArgs(18, [ext('hstore'), pgss, plpgsql])).toEqual(['--exclude-extension="pg_stat_statements"']);
    expect(extensionArgs(17, [pgss])).toEqual(['--exclude-extension="pg_stat_statements"']);
  });
  it('before 17, names the others (quoted) in an include list', () => {
    expect(extensionArgs(15, [ext('hstore'), pgss, plpgsql, ext('uuid-ossp')])).toEqual(['--extension="hstore"', '--extension="uuid-ossp"']);
  });
  it('before 17, with no other extension, names a built-in one, which pg_dump never dumps', () => {
    expect(extensionArgs(15, [pgss, plpgsql])).toEqual(['--extension="plpgsql"']);
    expect(extensionArgs(15, [pgss])).toEqual([]);
  });
  it('changes nothing when none is installed', () => {
    expect(extensionArgs(15, [ext('hstore'), plpgsql])).toEqual([]);
    expect(extensionArgs(18, [])).toEqual([]);
  });
  it('is part of a whole-database dump only', () => {
    const target = { binDir: '/b', major: 15, host: 'h', port: 1, user: 'u', password: 'p', database: 'd', extensions: [pgss, ext('x"y')] };
    expect(pgDumpCommand(target).args).toContain('--extension="x""y"');
    expect(pgDumpCommand({ ...target, table: { name: 't' } }).args.filter((a) => a.startsWith('--extension'))).toEqual([]);
  });
});

describe('classifyDumpFailure', () => {
  const pw = 'hunter2hunter2';
  it.each([
    // What pg_dump 15 and 18 print (checked against real servers).
    ['pg_dump: error: connection to server at "127.0.0.1", port 56001 failed: FATAL:  database "nope" does not exist\n', 'database_not_found'],
    ['pg_dump: error: no matching tables were found\n', 'table_not_found'],
    ['pg_dump: error: connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n', 'unreachable'],
    ['pg_dump: error: query failed: ERROR:  permission denied for table secret\n', 'failed'],
  ].map(([stderr, kind]) => [kind, stderr]))('%s: %j', (kind, stderr) => {
    expect(classifyDumpFailure(stderr, pw).kind).toBe(kind);
  });

  it('never repeats the password, and keeps the error lines', () => {
    const msg = dumpErrorMessage(`pg_dump: warning: something\npg_dump: error: bad password ${pw} given\n`, pw);
    expect(msg).toBe('pg_dump: error: bad password ******** given');
  });
});

describe('dumpContentDisposition', () => {
  const at = new Date('2026-12-01T10:15:00.123Z');
  it('names endpoint, database and time', () => {
    expect(dumpContentDisposition({ endpointId: 'ep-a1', database: 'postgres', at })).toBe('attachment; filename="ep-a1-postgres-20261201T101500Z.sql"');
  });
  it('adds the table', () => {
    expect(dumpContentDisposition({ endpointId: 'ep-a1', database: 'app', table: { schema: 'public', name: 'users' }, at })).toBe(
      'attachment; filename="ep-a1-app-public.users-20261201T101500Z.sql"',
    );
  });
  it('keeps quotes, slashes and non-ASCII out of the plain filename and gives the exact one as filename*', () => {
    const h = dumpContentDisposition({ endpointId: 'ep-a1', database: 'd/../é', table: { name: 'x"; DROP TABLE users; --' }, at });
    expect(h).toBe(
      `attachment; filename="ep-a1-d_..__-x___DROP_TABLE_users__---20261201T101500Z.sql"; ` +
        `filename*=UTF-8''ep-a1-d%2F..%2F%C3%A9-x%22%3B%20DROP%20TABLE%20users%3B%20---20261201T101500Z.sql`,
    );
  });
});
