/**
 * Which emails a user's preferences allow (email_preferences; no row = all).
 */
import type { EmailPreferences } from '../sql/email-log.ts';
import type { EmailType } from './service.ts';

/** True when the preferences allow an email of this type. */
export function preferencesAllow(prefs: EmailPreferences, type: EmailType): boolean {
  if (prefs.unsubscribedAll) return false;
  return type === 'DRIFT_REPORT' ? prefs.driftReports : prefs.inactivityNudges;
}

export { DEFAULT_PREFERENCES, preferencesFor, type EmailPreferences } from '../sql/email-log.ts';
