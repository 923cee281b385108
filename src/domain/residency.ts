/**
 * Where a project's data lives, per layer, in this deployment: only what the platform does or
 * knows. A region's place comes from the operator's catalog (LAMPION_REGION_CATALOG); nothing
 * is claimed that the configuration does not say.
 */
export interface RegionInfo {
  city: string | null;
  country: string | null;
  provider: string | null;
  datacenter: string | null;
  certifications: string[];
}

export const UNKNOWN_REGION: RegionInfo = { city: null, country: null, provider: 'self-hosted', datacenter: null, certifications: [] };

export interface DeploymentFacts {
  hostId: string;
  dataDir: string;
  storageDriver: string;
  proxyRequireTls: boolean;
  externalCatalog: boolean;
}

export interface DataLayer {
  layer: 'compute' | 'branch_storage' | 'wal_archive' | 'backups' | 'catalog';
  location: string;
  encrypted_in_transit: boolean;
  in_transit: string;
  encrypted_at_rest: boolean;
  at_rest: string;
}

const AT_REST = 'not encrypted by Lampion (an encrypted volume under the data dir is not detected or claimed)';

export function dataLayers(f: DeploymentFacts): DataLayer[] {
  const local = 'a local copy on the same host; nothing crosses a network';
  return [
    {
      layer: 'compute',
      location: `host ${f.hostId}`,
      encrypted_in_transit: f.proxyRequireTls,
      in_transit: f.proxyRequireTls
        ? 'clients reach the proxy over TLS only (plain connections are refused); proxy to compute stays on the host (unix socket or loopback), unencrypted'
        : 'TLS is offered by the proxy but not required (LAMPION_PROXY_REQUIRE_TLS=false): plain client connections are accepted',
      encrypted_at_rest: false,
      at_rest: 'memory and temporary files of the compute process on the host',
    },
    { layer: 'branch_storage', location: `${f.dataDir}/branches on host ${f.hostId} (${f.storageDriver} driver)`, encrypted_in_transit: true, in_transit: local, encrypted_at_rest: false, at_rest: AT_REST },
    { layer: 'wal_archive', location: `${f.dataDir}/wal on host ${f.hostId}`, encrypted_in_transit: true, in_transit: `${local} (basic_archive)`, encrypted_at_rest: false, at_rest: AT_REST },
    { layer: 'backups', location: `${f.dataDir}/branches/_bases on host ${f.hostId}`, encrypted_in_transit: true, in_transit: local, encrypted_at_rest: false, at_rest: AT_REST },
    {
      layer: 'catalog',
      location: f.externalCatalog ? 'the external control-plane Postgres of DATABASE_URL' : `${f.dataDir}/control on host ${f.hostId} (embedded Postgres)`,
      encrypted_in_transit: !f.externalCatalog,
      in_transit: f.externalCatalog ? 'as DATABASE_URL says (sslmode); not checked by Lampion' : 'loopback on the host',
      encrypted_at_rest: false,
      at_rest: `${AT_REST}; database passwords in it are sealed with LAMPION_SECRET_KEY (AES-256-GCM)`,
    },
  ];
}
