import { startTestStack, TestStack } from './support/stack';

describe('residency', () => {
  let t: TestStack;
  beforeAll(async () => {
    t = await startTestStack({
      LAMPION_REGIONS: 'fr-par-1,local',
      LAMPION_REGION_CATALOG: JSON.stringify({ 'fr-par-1': { city: 'Paris', country: 'France', provider: 'Scaleway', datacenter: 'DC2', certifications: ['ISO 27001', 'HDS'] } }),
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("reports the region as the operator describes it and each layer as this deployment runs it", async () => {
    const p = (await t.request('POST', '/v1/projects', { body: { name: 'eu', region: 'fr-par-1' } })).body;
    const r = await t.request('GET', `/v1/projects/${p.id}/residency`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      region_id: 'fr-par-1',
      region: { city: 'Paris', provider: 'Scaleway', datacenter: 'DC2', certifications: ['ISO 27001', 'HDS'] },
      region_described: true,
      compliance: { data_in_country: 'France' },
    });
    const layers = Object.fromEntries(r.body.data_layers.map((l: any) => [l.layer, l]));
    expect(Object.keys(layers)).toEqual(['compute', 'branch_storage', 'wal_archive', 'backups', 'catalog']);
    expect(layers.compute.encrypted_in_transit).toBe(true);
    expect(layers.compute.in_transit).toMatch(/TLS only/);
    for (const l of Object.values(layers) as any[]) expect(l.encrypted_at_rest).toBe(false);
    expect(layers.branch_storage.at_rest).toMatch(/not encrypted by Lampion/);
  });

  it('claims nothing about a region the operator did not describe', async () => {
    const p = (await t.request('POST', '/v1/projects', { body: { name: 'loc', region: 'local' } })).body;
    const r = await t.request('GET', `/v1/projects/${p.id}/residency`);
    expect(r.body).toMatchObject({ region_id: 'local', region_described: false, region: { city: null, country: null }, compliance: { data_in_country: null } });
  });
});
