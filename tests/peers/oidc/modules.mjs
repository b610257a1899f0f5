// Loads the OIDC peer's npm packages from where scripts/install-oidc-peer.sh put them.
//
// ES modules ignore NODE_PATH, and node_modules must not live in the clone, so bare
// `import 'oidc-provider'` cannot work here. This resolves a package with the CommonJS
// resolver (which honours NODE_PATH) from, in order: $OIDC_PEER_NODE_MODULES, each
// $NODE_PATH entry, a node_modules above this file, then
// ${JITGATE_CACHE:-$HOME/.cache/jitgate}/oidc-peer/node_modules, and imports it.
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export function nodeModulesDirs() {
  const dirs = [];
  if (process.env.OIDC_PEER_NODE_MODULES) dirs.push(process.env.OIDC_PEER_NODE_MODULES);
  const cache = process.env.JITGATE_CACHE || join(homedir(), '.cache', 'jitgate');
  dirs.push(join(cache, 'oidc-peer', 'node_modules'));
  return dirs;
}

export async function load(name) {
  const require = createRequire(import.meta.url);
  let resolved;
  try {
    // NODE_PATH and node_modules directories above this file.
    resolved = require.resolve(name);
  } catch {
    try {
      resolved = require.resolve(name, { paths: nodeModulesDirs() });
    } catch {
      throw new Error(
        `cannot find the npm package ${name}: run scripts/install-oidc-peer.sh first `
          + `(looked in NODE_PATH and ${nodeModulesDirs().join(', ')})`,
      );
    }
  }
  return import(pathToFileURL(resolved).href);
}
