/**
 * How `sendMany` makes SendGrid requests of a chunk's groupable emails: rendered,
 * then grouped by their kind's template (lib/email/substitution.ts), at most
 * PERSONALIZATIONS_MAX a request. The email service sends and records them.
 */
import { PERSONALIZATIONS_MAX, substitutable, type SubstitutionTemplate } from './substitution.ts';
import type { BatchEmail, EmailContent, EmailHead } from './service.ts';

/** A claimed email of a `sendMany` chunk, to be sent. */
export interface ToSend {
  b: BatchEmail;
  email: EmailHead;
  logId: string;
  i: number;
}

/** A claimed email rendered for a group. */
export interface GroupMember extends Omit<ToSend, 'b'> {
  content: EmailContent;
}

/** What `groupsOf` makes of a chunk's groupable emails: a request for a group, an email sent alone, or a render that failed. */
export type GroupUnit = { template: SubstitutionTemplate; members: GroupMember[] } | { alone: GroupMember } | (Omit<ToSend, 'b'> & { failed: unknown });

/**
 * Renders groupable emails and groups them by their kind's template, at most
 * PERSONALIZATIONS_MAX a request. One that SendGrid could not fill from the
 * template (too large, no `substituted`, an address it would refuse) is a group
 * of its own, sent alone; one whose render throws fails alone.
 */
export function groupsOf(items: ToSend[], content: (b: BatchEmail) => () => EmailContent): GroupUnit[] {
  const units: GroupUnit[] = [];
  const byTemplate = new Map<SubstitutionTemplate, GroupMember[]>();
  for (const { b, ...rest } of items) {
    let rendered: EmailContent;
    try {
      rendered = content(b)();
    } catch (err) {
      units.push({ ...rest, failed: err });
      continue;
    }
    const member: GroupMember = { ...rest, content: rendered };
    const s = rendered.substituted;
    if (!s || !isPlausibleAddress(rest.email.to) || !substitutable(s.values)) {
      units.push({ alone: member });
      continue;
    }
    let members = byTemplate.get(s.template);
    if (!members || members.length >= PERSONALIZATIONS_MAX) {
      members = [];
      byTemplate.set(s.template, members);
      units.push({ template: s.template, members });
    }
    members.push(member);
  }
  return units;
}

/** One address, local@domain with a dot in the domain, no spaces or angle brackets: what a provider can deliver to. */
export function isPlausibleAddress(to: string): boolean {
  return /^[^\s@<>,;"]+@[^\s@<>,;"]+\.[^\s@<>,;".]+$/.test(to);
}
