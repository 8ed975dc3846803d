/**
 * How `sendMany` makes SendGrid requests of a chunk's groupable emails: rendered,
 * then grouped by their kind's template (lib/email/substitution.ts), at most
 * PERSONALIZATIONS_MAX a request. The email service sends and records them.
 */
import { PERSONALIZATIONS_MAX, substitutable, type Substituted, type SubstitutionTemplate } from './substitution.ts';

/** An email to group (T: what the caller knows of it) with its rendered content (C). */
export type Member<T, C> = T & { content: C };

/** What `groupsOf` makes of an email: part of a request for a group, an email sent alone, or a render that failed. */
export type GroupUnit<T, C> = { template: SubstitutionTemplate; members: Array<Member<T, C>> } | { alone: Member<T, C> } | { item: T; failed: unknown };

/**
 * Renders emails and groups them by their kind's template, at most
 * PERSONALIZATIONS_MAX a request. One that SendGrid could not fill from the
 * template (too large, no `substituted`, an address it would refuse) is sent
 * alone; one whose render throws fails alone.
 */
export function groupsOf<T extends { email: { to: string } }, C extends { substituted?: Substituted }>(items: T[], render: (item: T) => C): Array<GroupUnit<T, C>> {
  const units: Array<GroupUnit<T, C>> = [];
  const byTemplate = new Map<SubstitutionTemplate, Array<Member<T, C>>>();
  for (const item of items) {
    let content: C;
    try {
      content = render(item);
    } catch (err) {
      units.push({ item, failed: err });
      continue;
    }
    const member: Member<T, C> = { ...item, content };
    const s = content.substituted;
    if (!s || !isPlausibleAddress(item.email.to) || !substitutable(s.values)) {
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
