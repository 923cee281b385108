/** Real Temporal and real Postgres are started once in test/globalSetup.ts. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.(t|j)s$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  // psql-describe and @supabase/pg-delta ship ES module syntax only: jest's module system needs them transformed.
  transformIgnorePatterns: ['/node_modules/(?!(psql-describe|@supabase/pg-delta)/)'],
  globalSetup: '<rootDir>/test/globalSetup.ts',
  globalTeardown: '<rootDir>/test/globalTeardown.ts',
  testTimeout: 180000,
  maxWorkers: 1,
};
