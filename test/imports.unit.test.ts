import { parseSourceDsn, redactDsn, scrubSecret, SourceDsnError } from '../src/domain/sourceDsn';
import { DumpProgressReader, isDumpMessage, verboseObject } from '../src/engine/dumpProgress';
import { pgDumpArgs } from '../src/engine/imports';
import { checkCompatibility, majorOf } from '../src/engine/sourceInspect';
import { stripChannelBinding, errorResponse } from '../src/engine/tlsTunnel';

describe('source DSN', () => {
  it('parses a URL: user, password, host, port, database, sslmode (default prefer)', () => {
    expect(parseSourceDsn('postgresql://alice:s%40cr%3At@db.example.com:6543/shop?sslmode=verify-full&connect_timeout=5&application_name=x')).toEqual({
      user: 'alice',
      password: 's@cr:t',
      host: 'db.example.com',
      port: 6543,
      database: 'shop',
      sslmode: 'verify-full',
      connectTimeoutSeconds: 5,
      applicationName: 'x',
    });
    expect(parseSourceDsn('postgres://bob@127.0.0.1/')).toEqual({ user: 'bob', host: '127.0.0.1', port: 5432, database: 'bob', sslmode: 'prefer' });
    expect(parseSourceDsn('postgresql://u:p@[::1]:5433/d')).toMatchObject({ host: '::1', port: 5433, database: 'd' });
    // A password may hold '@' unencoded: the last '@' ends the user info.
    expect(parseSourceDsn('postgresql://u:p@ss@h/d')).toMatchObject({ password: 'p@ss', host: 'h' });
  });

  it.each([
    ['', 'must not be empty'],
    ['host=a user=b', 'postgresql://'],
    ['mysql://u:Zq9@h/d', 'postgresql://'],
    ['postgresql://h/d', 'must name a user'],
    ['postgresql://u:Zq9@/d', 'must name a host'],
    ['postgresql://u:Zq9@a,b/d', 'exactly one host'],
    ['postgresql://u:Zq9@%2Fvar%2Frun/d', 'unix socket'],
    ['postgresql://u:Zq9@h:0/d', 'port'],
    ['postgresql://u:Zq9@h:99999/d', 'port'],
    ['postgresql://u:Zq9%00@h/d', 'NUL'],
    ['postgresql://u:Zq9%zz@h/d', 'percent-encoding'],
    ['postgresql://u:Zq9@h/d\r', 'control characters'],
    ['postgresql://u:Zq9@h/d?sslmode=sometimes', 'sslmode must be one of'],
    ['postgresql://u:Zq9@h/d?sslrootcert=/etc/passwd', 'sslrootcert'],
    ['postgresql://u:Zq9@h/d?host=/tmp', 'unsupported parameter "host"'],
    ['postgresql://u:Zq9@h/d?options=-c%20x', 'unsupported parameter "options"'],
  ])('refuses %j (%s), without quoting it', (dsn, message) => {
    let err: unknown;
    try {
      parseSourceDsn(dsn);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SourceDsnError);
    expect((err as Error).message).toContain(message);
    expect((err as Error).message).not.toContain('Zq9');
  });

  it('redacts to user, host, port and database', () => {
    expect(redactDsn(parseSourceDsn('postgresql://al%20ice:secret@db:5433/my%2Fdb?sslmode=require'))).toBe('postgresql://al%20ice@db:5433/my%2Fdb');
    expect(redactDsn(parseSourceDsn('postgresql://u:secret@[::1]/d'))).toBe('postgresql://u@[::1]:5432/d');
  });

  it('scrubs a secret in every spelling from a message', () => {
    const pw = 'p@ss w/rd';
    const text = `failed: ${pw} and ${encodeURIComponent(pw)} in postgresql://u:${encodeURIComponent(pw)}@h/d`;
    const out = scrubSecret(text, [pw, undefined]);
    expect(out).not.toContain(pw);
    expect(out).not.toContain(encodeURIComponent(pw));
    expect(out).toContain('****');
    expect(scrubSecret('nothing here', [undefined])).toBe('nothing here');
  });
});

describe('dump progress', () => {
  // pg_dump --verbose's stderr, as pg_dump 15 and 18 write it (with an error at the end).
  const log = [
    'pg_dump: last built-in OID is 16383',
    'pg_dump: reading extensions',
    'pg_dump: saving "search_path = "',
    'pg_dump: creating SCHEMA "app"',
    'pg_dump: creating TABLE "public.users"',
    'pg_dump: processing data for table "public.users"',
    'pg_dump: dumping contents of table "public.users"',
    'pg_dump: creating CONSTRAINT "public.users users_pkey"',
    'pg_dump: creating FK CONSTRAINT "public.orders orders_user_fkey"',
    'pg_dump: error: Dumping the contents of table "orders" failed: PQgetResult() failed.',
    'pg_dump: detail: Error message from server: server closed the connection unexpectedly',
    '',
  ].join('\n');

  it('reads the objects pg_dump begins into "TYPE name"', () => {
    expect(verboseObject('pg_dump: creating TABLE "public.users"')).toBe('TABLE public.users');
    expect(verboseObject('pg_dump: processing data for table "public.users"')).toBe('TABLE DATA public.users');
    expect(verboseObject('pg_dump: creating SCHEMA "app"')).toBe('SCHEMA app');
    expect(verboseObject('pg_dump: creating FK CONSTRAINT "public.o o_fkey"')).toBe('FK CONSTRAINT public.o o_fkey');
    expect(verboseObject('pg_dump: reading extensions')).toBeUndefined();
    expect(verboseObject('pg_dump: error: creating TABLE "x"')).toBeUndefined();
  });

  it('keeps errors, warnings and foreign text as messages, not the progress lines', () => {
    expect(isDumpMessage('pg_dump: error: connection failed')).toBe(true);
    expect(isDumpMessage('pg_dump: detail: the server said no')).toBe(true);
    expect(isDumpMessage('could not connect')).toBe(true);
    expect(isDumpMessage('pg_dump: reading tables')).toBe(false);
    expect(isDumpMessage('   ')).toBe(false);
  });

  it('counts objects and keeps the messages the same however the log is cut', () => {
    const whole = new DumpProgressReader();
    whole.dumpLog(log);
    expect(whole.progress).toEqual({ bytesDone: 0, objectsDone: 5, currentObject: 'FK CONSTRAINT public.orders orders_user_fkey' });
    const messages = whole.dumpMessages();
    expect(messages.split('\n')).toEqual([expect.stringMatching(/^pg_dump: error: Dumping/), expect.stringMatching(/^pg_dump: detail:/)]);
    for (const size of [1, 2, 3, 7, 64, 1000]) {
      const r = new DumpProgressReader();
      const seen: (string | undefined)[] = [undefined];
      for (let i = 0; i < log.length; i += size) {
        r.dumpLog(log.slice(i, i + size));
        if (seen[seen.length - 1] !== r.progress.currentObject) seen.push(r.progress.currentObject);
      }
      expect({ size, progress: r.progress, messages: r.dumpMessages() }).toEqual({ size, progress: whole.progress, messages });
      if (size < 20) expect(seen).toEqual([undefined, 'SCHEMA app', 'TABLE public.users', 'TABLE DATA public.users', 'CONSTRAINT public.users users_pkey', 'FK CONSTRAINT public.orders orders_user_fkey']);
    }
  });

  it("takes the bytes from pv's last count, also when a number is cut between chunks", () => {
    const r = new DumpProgressReader();
    r.byteCount('0\n65536\n13');
    expect(r.progress.bytesDone).toBe(65536);
    r.byteCount('1072\n');
    expect(r.progress.bytesDone).toBe(131072);
    r.byteCount('pv: write failed: Broken pipe\n');
    expect(r.progress.bytesDone).toBe(131072);
  });
});

describe('pg_dump options', () => {
  it('leaves out owners, grants, subscriptions and the extensions the target has, by the tools\' means', () => {
    const common = ['--format=plain', '--no-owner', '--no-privileges', '--no-publications', '--no-subscriptions', '--no-security-labels', '--no-tablespaces'];
    expect(pgDumpArgs(18, ['plpgsql', 'hstore'])).toEqual([...common, '--exclude-extension="plpgsql"', '--exclude-extension="pg_stat_statements"']);
    // Before 17 only an include list exists: everything but pg_stat_statements (plpgsql is never dumped).
    expect(pgDumpArgs(15, ['hstore', 'pg_stat_statements', 'plpgsql', 'uuid-ossp'])).toEqual([...common, '--extension="hstore"', '--extension="plpgsql"', '--extension="uuid-ossp"']);
    expect(pgDumpArgs(15, ['plpgsql'])).toEqual([...common, '--extension="plpgsql"']);
  });

  it('also leaves out the extensions the platform creates before the load, when the source has them', () => {
    const common = ['--format=plain', '--no-owner', '--no-privileges', '--no-publications', '--no-subscriptions', '--no-security-labels', '--no-tablespaces'];
    expect(pgDumpArgs(18, ['plpgsql', 'vector'], ['vector', 'pg_buffercache'])).toEqual([...common, '--exclude-extension="plpgsql"', '--exclude-extension="pg_stat_statements"', '--exclude-extension="vector"']);
    expect(pgDumpArgs(15, ['plpgsql', 'vector', 'hstore'], ['vector'])).toEqual([...common, '--extension="plpgsql"', '--extension="hstore"']);
  });
});

describe('source compatibility', () => {
  const target = {
    major: 15,
    extensions: [
      { name: 'hstore', defaultVersion: '1.8', comment: null, userCreatable: true },
      { name: 'postgres_fdw', defaultVersion: '1.1', comment: null, userCreatable: false },
      { name: 'pg_stat_statements', defaultVersion: '1.10', comment: null, userCreatable: false },
    ],
    preinstalled: ['plpgsql', 'pg_stat_statements'],
    platformCreated: ['vector', 'pg_buffercache'],
  };
  const facts = (major: number, extensions: { name: string; version: string }[] = []) => ({ pgVersion: `${major}.2`, major, sizeBytes: 1, tables: 0, tls: false, extensions });

  it('majors from server_version_num', () => {
    expect(majorOf(150013)).toBe(15);
    expect(majorOf(180006)).toBe(18);
    expect(majorOf(120000)).toBe(12);
    expect(majorOf(90624)).toBeLessThan(10);
  });

  it('refuses a newer source and one older than 12', () => {
    expect(checkCompatibility(facts(15), target).errors).toEqual([]);
    expect(checkCompatibility(facts(12), target).errors).toEqual([]);
    expect(checkCompatibility(facts(16), target).errors.map((e) => e.code)).toEqual(['unsupported_major']);
    expect(checkCompatibility(facts(11), target).errors.map((e) => e.code)).toEqual(['unsupported_major']);
  });

  it('a platform-created extension is fine in public, and named when the source has it elsewhere', () => {
    const t18 = { ...target, major: 18, extensions: [...target.extensions, { name: 'vector', defaultVersion: '0.8.1', comment: null, userCreatable: false }] };
    expect(checkCompatibility(facts(18, [{ name: 'vector', version: '0.8.0', schema: 'public' } as any]), t18).errors).toEqual([]);
    const elsewhere = checkCompatibility(facts(18, [{ name: 'vector', version: '0.8.0', schema: 'extensions' } as any]), t18);
    expect(elsewhere.errors).toEqual([{ code: 'extension_needs_superuser', message: expect.stringContaining('only in schema public') }]);
  });

  it('names missing extensions and those only a superuser may create; preinstalled ones are fine', () => {
    const r = checkCompatibility(
      facts(15, [
        { name: 'hstore', version: '1.8' },
        { name: 'vector', version: '0.8.0' },
        { name: 'postgres_fdw', version: '1.1' },
        { name: 'pg_stat_statements', version: '1.10' },
      ]),
      target,
    );
    expect(r.extensions).toEqual([
      { name: 'hstore', version: '1.8', availableOnTarget: true, targetVersion: '1.8', requiresSuperuser: false },
      { name: 'vector', version: '0.8.0', availableOnTarget: false, targetVersion: null, requiresSuperuser: false },
      { name: 'postgres_fdw', version: '1.1', availableOnTarget: true, targetVersion: '1.1', requiresSuperuser: true },
      { name: 'pg_stat_statements', version: '1.10', availableOnTarget: true, targetVersion: '1.10', requiresSuperuser: false },
    ]);
    expect(r.errors.map((e) => [e.code, e.message.match(/"([^"]+)"/)?.[1]])).toEqual([
      ['missing_extension', 'vector'],
      ['extension_needs_superuser', 'postgres_fdw'],
    ]);
  });
});

describe('TLS tunnel: channel binding taken out of the server offer', () => {
  const sasl = (mechs: string[]) => {
    const body = Buffer.from(`${mechs.join('\0')}\0\0`);
    const m = Buffer.alloc(9 + body.length);
    m.write('R', 0, 'latin1');
    m.writeInt32BE(8 + body.length, 1);
    m.writeInt32BE(10, 5);
    body.copy(m, 9);
    return m;
  };
  const authOk = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);

  async function through(chunks: Buffer[]): Promise<Buffer> {
    const t = stripChannelBinding();
    const out: Buffer[] = [];
    t.on('data', (d: Buffer) => out.push(d));
    for (const c of chunks) t.write(c);
    t.end();
    await new Promise((r) => t.once('end', r));
    return Buffer.concat(out);
  }

  it('rewrites AuthenticationSASL, even cut in pieces, then passes bytes untouched', async () => {
    const after = Buffer.from('S\0\0\0\x16server_version\x0018\0');
    const input = Buffer.concat([sasl(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']), authOk, after]);
    const expected = Buffer.concat([sasl(['SCRAM-SHA-256']), authOk, after]);
    expect(await through([input])).toEqual(expected);
    const pieces: Buffer[] = [];
    for (let i = 0; i < input.length; i += 3) pieces.push(input.subarray(i, i + 3));
    expect(await through(pieces)).toEqual(expected);
    // An error ends the exchange too.
    const err = errorResponse('nope', '28P01');
    expect(await through([err, Buffer.from('rest')])).toEqual(Buffer.concat([err, Buffer.from('rest')]));
  });
});
