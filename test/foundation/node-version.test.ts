/**
 * An older Node gets one clear message instead of a broken run: `npm ci` stops
 * (engine-strict in .npmrc, engines in package.json), and the command line exits 2
 * with one line before it loads the program. Run with the machine's older Node
 * (`OLD_NODE`, else the first `node` on PATH outside the Node 24 in use), skipped
 * when the machine has none.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import ts from 'typescript';
import { ROOT } from '../support/run.ts';

/** An installed Node older than 24, or undefined. */
function findOldNode(): { node: string; version: string } | undefined {
  const candidates = [process.env.OLD_NODE, ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'node')), '/usr/bin/node', '/usr/local/bin/node'];
  for (const c of candidates) {
    if (!c || !fs.existsSync(c)) continue;
    const r = spawnSync(c, ['-p', 'process.versions.node'], { encoding: 'utf8' });
    const version = r.stdout?.trim();
    if (r.status === 0 && version && Number(version.split('.')[0]) < 24) return { node: c, version };
  }
  return undefined;
}

describe('Node version check', function () {
  this.timeout(120_000);
  const old = findOldNode();
  let tmp: string;

  before(function () {
    if (!old) {
      console.log('      (skipped: no Node older than 24 on this machine; set OLD_NODE=/path/to/node)');
      this.skip();
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-node-version-'));
  });
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

  it('the command line exits 2 with one line naming Node 24 on an older Node, before loading the program', () => {
    // The entry compiled as `npm run build` compiles it (same options), alone: were the
    // check missing or after the program's import, loading ../lib/cli/main.js would fail.
    const config = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
    const out = ts.transpileModule(fs.readFileSync(path.join(ROOT, 'bin/exitosx-cron.ts'), 'utf8'), { compilerOptions: { ...config.options, module: ts.ModuleKind.ESNext, sourceMap: false }, fileName: 'exitosx-cron.ts' });
    fs.mkdirSync(path.join(tmp, 'bin'));
    fs.writeFileSync(path.join(tmp, 'package.json'), '{"type":"module"}');
    const entry = path.join(tmp, 'bin', 'exitosx-cron.js');
    fs.writeFileSync(entry, out.outputText);
    for (const args of [['--help'], ['detect-inactivity', '--dry-run']]) {
      const r = spawnSync(old!.node, [entry, ...args], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stdout).to.equal('');
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0]).to.equal(`exitosx-cron needs Node.js 24 or later; this is Node.js ${old!.version} (${fs.realpathSync(old!.node)})`);
    }
  });

  it('npm ci stops on an older Node with the version needed (engine-strict)', function () {
    const npm = path.join(path.dirname(old!.node), 'npm');
    if (!fs.existsSync(npm)) this.skip();
    for (const f of ['package.json', 'package-lock.json', '.npmrc']) fs.copyFileSync(path.join(ROOT, f), path.join(tmp, f));
    // --dry-run: without engine-strict this would go on and "add" every package.
    const env = { ...process.env, PATH: `${path.dirname(old!.node)}${path.delimiter}${process.env.PATH ?? ''}` };
    const r = spawnSync(npm, ['ci', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: tmp, env, encoding: 'utf8', timeout: 90_000 });
    expect(r.status, r.stdout + r.stderr).to.not.equal(0);
    expect(r.stderr).to.include('EBADENGINE');
    expect(r.stderr).to.include('Required: {"node":">=24"}');
    expect(r.stdout).to.not.include('added');
    // package.json's engines and the README agree on the version.
    expect((JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node).to.equal('>=24');
  });
});
