/**
 * k8s/ holds the chart's objects as plain manifests (scripts/render-k8s.ts): they must
 * match what the chart renders now, and be valid objects.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { K8S_DIR, staleFiles } from '../../scripts/render-k8s.ts';
import { parseObjects, schemaErrors } from './support/manifests.ts';

describe('plain manifests in k8s/', function () {
  this.timeout(30_000);

  it('are what the chart renders now (else: node scripts/render-k8s.ts)', () => {
    const stale = staleFiles();
    expect(stale, `k8s/ is out of date (${stale.join(', ')}): run node scripts/render-k8s.ts`).to.deep.equal([]);
  });

  it('are valid against the upstream schemas, with no Secret values and no Helm hooks', () => {
    const objects = fs
      .readdirSync(K8S_DIR)
      .filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => parseObjects(fs.readFileSync(path.join(K8S_DIR, f), 'utf8')));
    expect(objects.flatMap(schemaErrors)).to.deep.equal([]);
    expect(objects.map((o) => o.kind)).to.include.members(['CronJob', 'Job', 'ConfigMap', 'Role', 'RoleBinding', 'ServiceAccount', 'NetworkPolicy']);
    expect(objects.map((o) => o.kind)).not.to.include('Secret');
    for (const o of objects) expect(Object.keys(o.metadata.annotations ?? {}).filter((k) => k.startsWith('helm.sh/')), `${o.kind}/${o.metadata.name}`).to.deep.equal([]);
  });
});
