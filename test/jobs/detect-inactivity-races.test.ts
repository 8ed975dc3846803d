/**
 * Deduplication under races rests on the database, not on a read before the write:
 * two writers that both saw "no open signal" open one signal between them (the
 * partial unique index `signals_one_open_per_subject`), and two escalations of the
 * same signal escalate it once, each with exactly one ledger entry.
 */
import { expect } from 'chai';
import { escalateSignals, openSignals, type NewSignal } from '../../lib/sql/signals.ts';
import { eachBackend } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW } from '../support/run.ts';

describe('detect-inactivity under races', () => {
  eachBackend((db) => {
    beforeEach(() => db().truncate());

    const signal = (companyId: string, userId: string): NewSignal => ({
      companyId, userId, channel: 'TIME_DECAY', eventType: 'user_inactivity', category: 'PERSONAL', severity: 'MEDIUM', confidence: 'CONFIDENT', title: 'Owner inactive for 30 days', metadata: { daysInactive: 30 },
    });

    it('opens one signal when two runs open the same (user, company) at once', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      const results = await Promise.all([1, 2, 3].map(() => db().knex.transaction((trx) => openSignals(trx, [signal(company.id, user.id)], NOW))));
      expect(results.map((r) => r.length).sort()).to.deep.equal([0, 0, 1]);
      expect(await db().knex('signals').count({ n: '*' }).first()).to.deep.equal({ n: 1 });
      expect(await db().knex('value_ledger_entries').where({ entry_type: 'SIGNAL_CREATED' }).count({ n: '*' }).first()).to.deep.equal({ n: 1 });
    });

    it('opens each subject once within one batch, and skips the subjects already open', async () => {
      const a = await anOwnedCompany(db().knex, { daysInactive: 30 });
      const b = await anOwnedCompany(db().knex, { daysInactive: 30 });
      await openSignals(db().knex, [signal(a.company.id, a.user.id)], NOW);
      const opened = await openSignals(db().knex, [signal(a.company.id, a.user.id), signal(b.company.id, b.user.id), signal(b.company.id, b.user.id)], NOW);
      expect(opened.map((s) => s.companyId)).to.deep.equal([b.company.id]);
      expect(await db().knex('value_ledger_entries').count({ n: '*' }).first()).to.deep.equal({ n: 2 });
    });

    it('escalates once when two runs escalate the same signal at once', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 50 });
      const [opened] = await openSignals(db().knex, [signal(company.id, user.id)], NOW);
      const escalation = { id: opened!.id, companyId: company.id, fromSeverity: 'MEDIUM' as const, severity: 'HIGH' as const, title: 'Owner inactive for 50 days', metadata: { daysInactive: 50 } };
      const results = await Promise.all([1, 2].map(() => db().knex.transaction((trx) => escalateSignals(trx, [escalation], NOW))));
      expect(results.map((r) => r.length).sort()).to.deep.equal([0, 1]);
      expect(await db().knex('signals').where({ id: opened!.id }).first()).to.include({ severity: 'HIGH', title: 'Owner inactive for 50 days' });
      expect(await db().knex('value_ledger_entries').where({ entry_type: 'SIGNAL_ESCALATED' }).count({ n: '*' }).first()).to.deep.equal({ n: 1 });
    });

    it('does not escalate a signal that was resolved meanwhile', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 50 });
      const [opened] = await openSignals(db().knex, [signal(company.id, user.id)], NOW);
      await db().knex('signals').where({ id: opened!.id }).update({ resolved_at: NOW, resolution: 'USER_RETURNED' });
      expect(await escalateSignals(db().knex, [{ id: opened!.id, companyId: company.id, fromSeverity: 'MEDIUM', severity: 'HIGH', title: 't', metadata: {} }], NOW)).to.deep.equal([]);
    });
  });
});
