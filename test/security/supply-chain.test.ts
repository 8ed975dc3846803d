/**
 * The supply-chain decisions of docs/SUPPLY-CHAIN.md, kept true by the lock file and
 * the code: jsonpath-plus is the overridden 11.x, and decode-uri-component 0.2.2 (an
 * accepted exception) stays out of reach, only under intuit-oauth's query-string,
 * whose parser only runs in a method the suite never calls. A dependency update or a
 * new intuit-oauth call that breaks the argument fails here, pointing at the document.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from '../support/run.ts';

interface LockEntry {
  version: string;
  dev?: boolean;
  dependencies?: Record<string, string>;
}
const LOCK = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }).packages;
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { overrides?: Record<string, string> };
const SEE = 'docs/SUPPLY-CHAIN.md';

/** Every copy of `name` in the lock: [path, entry]. */
const copies = (name: string) => Object.entries(LOCK).filter(([p]) => p === `node_modules/${name}` || p.endsWith(`/node_modules/${name}`));
/** The lock paths of the packages that depend on `name`. */
const dependents = (name: string) => Object.entries(LOCK).filter(([, v]) => v.dependencies && name in v.dependencies).map(([p]) => p);

/** The source of `OAuthClient.prototype.<method>` in intuit-oauth, up to the next prototype method. */
function intuitMethod(source: string, method: string): string {
  const start = source.indexOf(`OAuthClient.prototype.${method} =`);
  expect(start, `intuit-oauth no longer defines ${method}`).to.be.above(-1);
  const next = source.indexOf('OAuthClient.prototype.', start + 1);
  return source.slice(start, next === -1 ? undefined : next);
}

/** lib/ files (recursively) whose text matches `re`. */
function libFilesMatching(re: RegExp, dir = path.join(ROOT, 'lib')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return libFilesMatching(re, p);
    return e.name.endsWith('.ts') && re.test(fs.readFileSync(p, 'utf8')) ? [path.relative(ROOT, p)] : [];
  });
}

describe('supply chain (docs/SUPPLY-CHAIN.md)', () => {
  it('jsonpath-plus is pinned by an override to an 11.x release (upstream\'s safe-eval fixes), one copy in the lock', () => {
    expect(PKG.overrides?.['jsonpath-plus'], `package.json overrides; ${SEE}`).to.match(/^11\.\d+\.\d+$/);
    const found = copies('jsonpath-plus');
    expect(found.map(([, v]) => v.version)).to.deep.equal([PKG.overrides!['jsonpath-plus']]);
    const installed = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/jsonpath-plus/package.json'), 'utf8')) as { version: string };
    expect(installed.version).to.equal(PKG.overrides!['jsonpath-plus']);
  });

  it('decode-uri-component stays out of reach: only query-string@6 → intuit-oauth use it, and the suite only refreshes tokens', () => {
    expect(copies('decode-uri-component').map(([, v]) => v.version), `a new version or copy: review the exception in ${SEE}`).to.deep.equal(['0.2.2']);
    expect(dependents('decode-uri-component')).to.deep.equal(['node_modules/query-string']);
    expect(dependents('query-string')).to.deep.equal(['node_modules/intuit-oauth']);
    // In intuit-oauth, query-string parses (decodes) only in createToken (the
    // authorization-code exchange of the connect flow, which lives in the product).
    const source = fs.readFileSync(path.join(ROOT, 'node_modules/intuit-oauth/src/OAuthClient.js'), 'utf8');
    expect(source.match(/queryString\.parse\(/g), 'query-string parses in more places').to.have.length(1);
    expect(intuitMethod(source, 'createToken')).to.include('queryString.parse(');
    expect(intuitMethod(source, 'refreshUsingToken')).to.not.include('queryString');
    // The suite's only use of intuit-oauth: refreshUsingToken, in lib/quickbooks/oauth.ts.
    expect(libFilesMatching(/from 'intuit-oauth'/), `a new user of intuit-oauth: check ${SEE}`).to.deep.equal(['lib/quickbooks/oauth.ts']);
    const oauth = fs.readFileSync(path.join(ROOT, 'lib/quickbooks/oauth.ts'), 'utf8');
    const calls = new Set([...oauth.matchAll(/\bclient\.(\w+)\(/g)].map((m) => m[1]));
    expect([...calls], `a new intuit-oauth call: check ${SEE}`).to.deep.equal(['refreshUsingToken']);
  });
});
