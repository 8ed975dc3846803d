/**
 * The Dockerfile, carried out without Docker: its COPY and RUN steps are read from
 * the real file and run in a temporary folder per stage (npm ci, build, npm ci
 * --omit=dev), then the runtime stage's entrypoint is started from the pruned tree
 * with the image's environment: --help, migrate and a dry run against PGlite. A
 * broken step or a runtime dependency listed under devDependencies fails here.
 *
 * Steps that install system packages into the base image (apt-get) are the base
 * image's business and are skipped; `ln -s` into the image's PATH is recreated in
 * the stage folder. npm ci runs with --prefer-offline (the machine's npm cache).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from '../support/run.ts';
import { parseDockerfile, parseEnv, parseExec, type Stage } from './support/dockerfile.ts';

const DOCKERFILE = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; dependencies: Record<string, string> };

/** The .dockerignore allowlist: `*` then `!path` lines. */
function allowedInContext(rel: string): boolean {
  const lines = fs
    .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let allowed = true;
  for (const l of lines) {
    if (l === '*') allowed = false;
    else if (l.startsWith('!') && (rel === l.slice(1).replace(/\/$/, '') || rel.startsWith(l.slice(1).replace(/\/?$/, '/')))) allowed = true;
  }
  return allowed;
}

interface Built {
  stages: Map<string, { root: string; workdir: string; env: Record<string, string> }>;
  runtime: Stage;
  skipped: string[];
}

/** Runs `cmd` with sh in `cwd`; rejects with its output when it fails. */
function sh(cmd: string, cwd: string, env: Record<string, string | undefined>, where: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', cmd], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-3000)));
    child.stderr.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-3000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${where}: \`${cmd}\` failed (exit ${code}):\n${out}`))));
  });
}

/** Carries out every stage, side by side as BuildKit does; COPY --from waits for its stage. */
async function build(tmp: string): Promise<Built> {
  const stages = parseDockerfile(DOCKERFILE);
  const built = new Map<string, { root: string; workdir: string; env: Record<string, string> }>();
  const done = new Map<string, Promise<void>>();
  const skipped: string[] = [];
  const inStage = (root: string, p: string) => path.join(root, p);
  for (const stage of stages) {
    const root = path.join(tmp, stage.name);
    fs.mkdirSync(root, { recursive: true });
    built.set(stage.name, { root, workdir: '/', env: {} });
  }
  const runStage = async (stage: Stage) => {
    const state = built.get(stage.name)!;
    const root = state.root;
    for (const ins of stage.instructions) {
      const where = `Dockerfile:${ins.line} ${ins.keyword} ${ins.args}`;
      if (ins.keyword === 'WORKDIR') {
        state.workdir = path.posix.resolve(state.workdir, ins.args);
        fs.mkdirSync(inStage(root, state.workdir), { recursive: true });
      } else if (ins.keyword === 'ENV') {
        Object.assign(state.env, parseEnv(ins.args));
      } else if (ins.keyword === 'COPY') {
        const parts = ins.args.split(/\s+/);
        const dest = parts.pop()!;
        const destAbs = inStage(root, path.posix.resolve(state.workdir, dest));
        for (const src of parts) {
          let from: string;
          if (ins.flags.from) {
            const other = built.get(ins.flags.from);
            if (!other) throw new Error(`${where}: no stage ${ins.flags.from}`);
            await done.get(ins.flags.from);
            from = inStage(other.root, src);
          } else {
            expect(allowedInContext(src.replace(/^\.\//, '')), `${where}: ${src} is excluded by .dockerignore`).to.equal(true);
            from = path.join(ROOT, src);
          }
          expect(fs.existsSync(from), `${where}: ${src} does not exist`).to.equal(true);
          if (fs.statSync(from).isDirectory()) fs.cpSync(from, destAbs, { recursive: true });
          else {
            const file = dest.endsWith('/') || parts.length > 1 ? path.join(destAbs, path.basename(src)) : destAbs;
            fs.mkdirSync(path.dirname(file), { recursive: true });
            fs.copyFileSync(from, file);
          }
        }
      } else if (ins.keyword === 'RUN') {
        for (const raw of ins.args.split('&&').map((s) => s.trim())) {
          if (/^(apt-get|rm -rf \/var\/lib\/apt)/.test(raw)) {
            skipped.push(raw);
            continue;
          }
          const ln = /^ln -s (\/\S+) (\/\S+)$/.exec(raw);
          if (ln) {
            const link = inStage(root, ln[2]!);
            fs.mkdirSync(path.dirname(link), { recursive: true });
            fs.symlinkSync(inStage(root, ln[1]!), link);
            continue;
          }
          const cmd = raw.startsWith('npm ci') ? `${raw} --prefer-offline` : raw;
          // The image's HOME (/tmp) would give npm an empty cache: keep the machine's.
          const { HOME: _home, ...env } = state.env;
          await sh(cmd, inStage(root, state.workdir), { ...process.env, ...env }, where);
        }
      }
    }
  };
  for (const stage of stages) done.set(stage.name, runStage(stage));
  await Promise.all(done.values());
  return { stages: built, runtime: stages.at(-1)!, skipped };
}

describe('Dockerfile, carried out without Docker', function () {
  this.timeout(240_000);
  let tmp: string;
  let built: Built;
  let app: string;
  let entry: string[];
  let imageEnv: Record<string, string>;
  let run: (args: string[]) => { status: number | null; stdout: string; stderr: string };

  before(async function () {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-image-'));
    built = await build(tmp);
    const runtime = built.stages.get(built.runtime.name)!;
    app = path.join(runtime.root, runtime.workdir);
    const entrypoint = parseExec(built.runtime.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1)!.args);
    entry = entrypoint;
    // The image's /tmp is the pod's emptyDir: map it to a folder of its own.
    const podTmp = path.join(tmp, 'pod-tmp');
    fs.mkdirSync(podTmp);
    imageEnv = Object.fromEntries(Object.entries(runtime.env).map(([k, v]) => [k, v.replace(/^\/tmp(?=\/|$)/, podTmp)]));
    const program = entrypoint[entrypoint.indexOf('--') + 1]!;
    const resolved = path.join(runtime.root, 'usr/local/bin', program);
    run = (args) => {
      const r = spawnSync(resolved, args, { cwd: app, env: { PATH: process.env.PATH ?? '', ...imageEnv }, encoding: 'utf8', timeout: 60_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
  });

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('builds on Node 24, as a numeric non-root user, with tini as PID 1 and exitosx-cron as the entrypoint', () => {
    const stages = parseDockerfile(DOCKERFILE);
    expect(stages.length).to.be.at.least(2);
    for (const s of stages) expect(s.from).to.match(/^(node:24(-slim|-bookworm-slim)?|gcr\.io\/distroless\/nodejs24\S*)$/);
    const user = built.runtime.instructions.filter((i) => i.keyword === 'USER').at(-1)!.args;
    expect(user).to.match(/^[1-9]\d*(:\d+)?$/);
    expect(entry).to.deep.equal(['/usr/bin/tini', '--', 'exitosx-cron']);
    expect(built.skipped.join(' ')).to.include('tini');
    expect(imageEnv.EMBEDDED_DB_DIR).to.match(/pod-tmp\//);
    expect(imageEnv.EMAIL_OUTBOX_DIR).to.match(/pod-tmp\//);
  });

  it('keeps only production dependencies and the compiled JavaScript in the runtime stage', () => {
    expect(fs.readdirSync(app).sort()).to.deep.equal(['dist', 'node_modules', 'package-lock.json', 'package.json', 'sbom.cdx.json']);
    // Every package the lockfile marks dev-only is absent (some dev tools' deps, like @types/node, are also production deps' deps).
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([p, v]) => p.startsWith('node_modules/') && v.dev).map(([p]) => p);
    expect(devOnly.length).to.be.above(0);
    for (const p of devOnly) expect(fs.existsSync(path.join(app, p)), `dev-only ${p} in the image`).to.equal(false);
    for (const dev of ['typescript', 'mocha', 'eslint', 'fast-check']) expect(fs.existsSync(path.join(app, 'node_modules', dev)), dev).to.equal(false);
    for (const dep of Object.keys(PKG.dependencies)) expect(fs.existsSync(path.join(app, 'node_modules', dep)), `dependency ${dep} missing`).to.equal(true);
    const ts = execFileSync('find', [path.join(app, 'dist'), '-name', '*.ts', '-not', '-name', '*.d.ts'], { encoding: 'utf8' }).trim();
    expect(ts).to.equal('');
    // What Node never loads is pruned (scripts/prune-node-modules.sh, no source maps from tsc).
    const unloaded = execFileSync('find', [app, '(', '-name', '*.map', '-o', '-name', '*.d.ts', '-o', '-name', '*.md', ')', '-print'], { encoding: 'utf8' }).trim();
    expect(unloaded).to.equal('');
    // The SBOM: CycloneDX of the production tree, the jsonpath-plus override in it, no dev tool.
    const bom = JSON.parse(fs.readFileSync(path.join(app, 'sbom.cdx.json'), 'utf8')) as { bomFormat: string; components: Array<{ name: string; version: string }> };
    expect(bom.bomFormat).to.equal('CycloneDX');
    const names = new Map(bom.components.map((c) => [c.name, c.version]));
    for (const dep of Object.keys(PKG.dependencies)) expect(names.has(dep), `SBOM lacks ${dep}`).to.equal(true);
    // Every production package of the lock, also those a dev tool shares (npm/cli#7909).
    const bomIds = new Set(bom.components.map((c) => `${c.name}@${c.version}`));
    const prodIds = Object.entries(lock.packages).filter(([p, v]) => p && !v.dev).map(([p, v]) => `${p.replace(/.*node_modules\//, '')}@${(v as { version: string }).version}`);
    expect(prodIds.filter((id) => !bomIds.has(id)), 'production packages missing from the SBOM').to.deep.equal([]);
    expect(bomIds.size).to.equal(new Set(prodIds).size);
    expect(names.get('jsonpath-plus')).to.match(/^11\./);
    for (const dev of ['typescript', 'mocha', 'eslint']) expect(names.has(dev), `SBOM lists ${dev}`).to.equal(false);
    // The symlink on PATH is package.json's bin.
    const link = fs.readlinkSync(path.join(built.stages.get(built.runtime.name)!.root, 'usr/local/bin/exitosx-cron'));
    expect(link.endsWith(path.join('app', PKG.bin['exitosx-cron']!))).to.equal(true);
  });

  it('starts: --help lists the commands (the image CMD)', () => {
    const cmd = parseExec(built.runtime.instructions.filter((i) => i.keyword === 'CMD').at(-1)!.args);
    const r = run(cmd);
    expect(r.status, r.stderr).to.equal(0);
    for (const c of ['generate-drift-reports', 'detect-inactivity', 'sync-quickbooks', 'migrate', 'trigger']) expect(r.stdout).to.include(c);
  });

  it('migrates and dry-runs a job against PGlite, writing only under /tmp (read-only root)', () => {
    const marker = path.join(tmp, 'marker');
    fs.writeFileSync(marker, '');
    const migrated = run(['migrate']);
    expect(migrated.status, migrated.stderr).to.equal(0);
    const dry = run(['detect-inactivity', '--dry-run']);
    expect(dry.status, dry.stderr).to.equal(0);
    const summary = JSON.parse(dry.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(summary).to.include({ success: true, job: 'detect-inactivity', dryRun: true });
    expect(fs.existsSync(path.join(imageEnv.EMBEDDED_DB_DIR!, 'PG_VERSION'))).to.equal(true);
    // Nothing under the image's own tree was written (the root filesystem is read-only in the pod).
    expect(execFileSync('find', [app, '-newer', marker], { encoding: 'utf8' }).trim()).to.equal('');
  });
});
