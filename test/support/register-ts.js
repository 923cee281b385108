/**
 * `node -r ./test/support/register-ts.js src/cli/start.ts`: runs the TypeScript sources directly
 * (compiled per file by @swc/core, as jest does), so a crash test can run a whole stack in a
 * process of its own without a build step.
 */
const fs = require('node:fs');
const swc = require('@swc/core');

require.extensions['.ts'] = function compileTs(module, filename) {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    sourceMaps: 'inline',
    module: { type: 'commonjs' },
    jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
  });
  module._compile(code, filename);
};
