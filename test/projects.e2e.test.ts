import fs from 'node:fs';
import { startTestStack, TestStack, proxyCaFile } from './support/stack';
import { psql, nodePg } from './support/clients';
import { isPortFree } from '../src/engine/ports';

describe('projects over HTTP, Temporal, real Postgres and the proxy', () => {
  let t: TestStack;
  let project: any;

  beforeAll(async () => {
    t = await startTestStack();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('creates a project whose connection string works with node-postgres and psql as given', async () => {
    const res = await t.request('POST', '/v1/projects', { body: { name: 'my-app' } });
    expect(res.status).toBe(201);
    project = res.body;
    expect(project).toMatchObject({ name: 'my-app', region: 'local', status: 'ready', host: '127.0.0.1', port: t.stack.proxyPort, user: 'cloud_admin' });
    expect(project.id).toMatch(/^prj-/);
    expect(project.endpoint_id).toMatch(/^ep-/);
    expect(project.connection_string).toBe(
      `postgresql://cloud_admin:${project.pg_password}@127.0.0.1:${t.stack.proxyPort}/${project.endpoint_id}.postgres?sslmode=require`,
    );

    const rows = await nodePg(
      project.connection_string,
      'CREATE TABLE items (id int primary key, label text); INSERT INTO items VALUES (1, $$one$$), (2, $$two$$); SELECT * FROM items ORDER BY id',
      proxyCaFile(t),
    );
    expect(rows).toEqual([
      { id: 1, label: 'one' },
      { id: 2, label: 'two' },
    ]);
    const viaPsql = await psql(project.connection_string, 'INSERT INTO items VALUES (3, $$three$$); SELECT count(*) FROM items');
    expect(viaPsql.stderr).toBe('');
    expect(viaPsql.stdout.trim().split('\n').pop()).toBe('3');
  });

  it('gives cloud_admin a powerful but non-superuser role with no way to the host', async () => {
    const who = await psql(project.connection_string, 'SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user');
    expect(who.stdout.trim()).toBe('f|t');
    const copy = await psql(project.connection_string, "COPY (SELECT 1) TO PROGRAM 'true'");
    expect(copy.code).not.toBe(0);
    expect(copy.stderr).toMatch(/pg_execute_server_program|superuser/);
    const read = await psql(project.connection_string, "SELECT pg_read_file('/etc/passwd')");
    expect(read.code).not.toBe(0);
    expect((await psql(project.connection_string, 'CREATE DATABASE app_db')).code).toBe(0);
    if (project.user_can_create_roles) {
      expect((await psql(project.connection_string, "CREATE ROLE app LOGIN PASSWORD 'x'")).code).toBe(0);
      const grant = await psql(project.connection_string, 'GRANT pg_execute_server_program TO cloud_admin');
      expect(grant.code).not.toBe(0);
      expect(grant.stderr).toMatch(/permission denied to grant role/);
    }
  });

  it('lists, reads and renames the project, validating input', async () => {
    const list = await t.request('GET', '/v1/projects');
    expect(list.status).toBe(200);
    expect(list.body.map((p: any) => p.id)).toContain(project.id);
    expect(list.body[0]).not.toHaveProperty('pg_password');

    const renamed = await t.request('PATCH', `/v1/projects/${project.id}`, { body: { name: 'renamed-app' } });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id: project.id, name: 'renamed-app', region: 'local' });
    expect((await t.request('GET', `/v1/projects/${project.id}`)).body.name).toBe('renamed-app');

    const bad = await t.request('PATCH', `/v1/projects/${project.id}`, { body: { name: '' } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.details.fields[0].field).toBe('body.name');
    const region = await t.request('POST', '/v1/projects', { body: { name: 'x', region: 'mars-1' } });
    expect(region.status).toBe(422);
    expect(region.body.error.details.fields[0].field).toBe('body.region');
  });

  it('reports the create operation and serves the OpenAPI document and health', async () => {
    const ops = await t.request('GET', `/v1/projects/${project.id}/operations`);
    expect(ops.status).toBe(200);
    const create = ops.body.find((o: any) => o.id === project.operation_id);
    expect(create).toMatchObject({ kind: 'project.create', status: 'succeeded', workflow_id: `project-create/${project.id}` });
    const one = await t.request('GET', `/v1/projects/${project.id}/operations/${project.operation_id}`);
    expect(one.body.result).toMatchObject({ endpointId: project.endpoint_id });

    const doc = await t.request('GET', '/v1/openapi.json', { key: null });
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/projects', '/v1/projects/{project_id}', '/health']));
    const health = await t.request('GET', '/health', { key: null });
    expect(health.status).toBe(200);
    expect(Object.keys(health.body.components).sort()).toEqual(['compute_limits', 'control_db', 'proxy', 'storage', 'temporal', 'worker']);
    expect(health.body.components.storage.detail).toBe(`driver ${project.storage_driver}`);
  });

  it('keeps the project, its compute and its rows across a restart of the stack', async () => {
    await t.restart();
    const after = await psql(project.connection_string, 'SELECT label FROM items ORDER BY id');
    expect(after.stdout.trim().split('\n')).toEqual(['one', 'two', 'three']);
    expect((await t.request('GET', `/v1/projects/${project.id}`)).body.status).toBe('ready');
  });

  it('deletes the project: connection refused, data dir and port gone, then 404', async () => {
    const ep = await t.stack.db.selectFrom('endpoints').select(['port', 'branch_id']).where('id', '=', project.endpoint_id).executeTakeFirstOrThrow();
    const dataDir = t.stack.engine.layout.branchDataDir(ep.branch_id);
    expect(fs.existsSync(dataDir)).toBe(true);

    const del = await t.request('DELETE', `/v1/projects/${project.id}`);
    expect(del.status).toBe(204);
    const after = await psql(project.connection_string, 'SELECT 1');
    expect(after.code).not.toBe(0);
    expect(after.stderr).toMatch(/not found/);
    expect(fs.existsSync(dataDir)).toBe(false);
    expect(await isPortFree(ep.port!)).toBe(true);
    expect(await t.stack.db.selectFrom('endpoints').select('id').where('project_id', '=', project.id).execute()).toEqual([]);
    expect((await t.request('GET', `/v1/projects/${project.id}`)).status).toBe(404);
    expect((await t.request('DELETE', `/v1/projects/${project.id}`)).status).toBe(404);
  });
});
