/**
 * Emails of one kind in one request: SendGrid's substitution tags.
 *
 * A mail/send request carries up to 1000 personalizations, each with its own
 * recipient, subject, headers, custom_args and `substitutions`: tag → value pairs
 * SendGrid replaces in the request's one `content`. An email that comes as its
 * kind's shared template (the layout with tags where emails differ) and its own
 * values can therefore share a request with others of its kind: the HTTP exchange
 * (~75 µs of the sender's CPU on loopback, a third of a nudge's cost) and the
 * template's bytes are paid once per request instead of once per email
 * (bench/FINDINGS.md, round five).
 *
 * Tags are `%%name%%`: short, since each is sent once per email, and safe, since
 * `%%` appears nowhere in the templates' own markup and an email with `%%` in a
 * value (which could form a tag once inserted) is sent alone with its filled-in
 * content. So is one over SendGrid's 10,000 bytes of substitutions per
 * personalization.
 */

/** A kind's content with tags in place of what differs per email: one object for all emails that may share a request. */
export interface SubstitutionTemplate {
  readonly html: string;
  readonly text: string;
}

/** One email as its kind's template and its own tag values. */
export interface Substituted {
  template: SubstitutionTemplate;
  /** Tag (`%%name%%`) → value, inserted as is (HTML values escaped already). */
  values: Record<string, string>;
}

/** SendGrid: "The total collective size of your substitutions may not exceed 10,000 bytes per personalization object." */
export const SUBSTITUTIONS_MAX_BYTES = 10_000;

/** SendGrid: at most 1000 personalizations per request. */
export const PERSONALIZATIONS_MAX = 1000;

/** The tag of a value. */
export function tag(name: string): string {
  return `%%${name}%%`;
}

const TAGS = /%%[\w.-]+%%/g;

/** The template with its tags replaced in one pass (values are not scanned again), as SendGrid fills it. */
export function fill(template: string, values: Record<string, string>): string {
  return template.replace(TAGS, (t) => values[t] ?? t);
}

/** Whether SendGrid can fill this email from the shared template: within the size limit, and no value that could form a tag. */
export function substitutable(values: Record<string, string>): boolean {
  let keys = 0;
  const all: string[] = [];
  for (const key in values) {
    keys += key.length; // ASCII: one byte a character
    all.push(values[key]!);
  }
  // One string: a scan for `%%` and one UTF-8 count, not one call per value.
  const joined = all.join('');
  return keys + joined.length <= SUBSTITUTIONS_MAX_BYTES && !joined.includes('%%') && keys + Buffer.byteLength(joined) <= SUBSTITUTIONS_MAX_BYTES;
}

/** An email's subject, and its html and text filled from `substituted` only when read (a single send, the outbox, a dry run). */
export interface SubstitutedEmail {
  subject: string;
  readonly html: string;
  readonly text: string;
  substituted: Substituted;
}

export function substitutedEmail(subject: string, substituted: Substituted): SubstitutedEmail {
  return {
    subject,
    substituted,
    get html() {
      return fill(substituted.template.html, substituted.values);
    },
    get text() {
      return fill(substituted.template.text, substituted.values);
    },
  };
}

/**
 * An email's values, collected while its markup is built: `put(value)` returns
 * the tag that stands for the value. Tags are numbered in order, so two emails
 * built through the same branches of a template get the same markup (its
 * shape) and can share a request.
 */
export class Values {
  readonly values: Record<string, string> = {};
  #next = 0;

  put = (value: string): string => {
    const t = numberedTag(this.#next++);
    this.values[t] = value;
    return t;
  };

  /** The number of the next tag `put` gives. */
  get next(): number {
    return this.#next;
  }
}

/**
 * Markup built once per key: for a fragment whose markup is decided by its key
 * alone (the number of its first tag and the branches it took), so that emails of
 * one shape do not build the same markup again (it was a fifth of the bytes a
 * drift report allocated). At most MARKUP_MAX keys are kept; past that, built each time.
 */
const MARKUP_MAX = 512;
const markups = new Map<string, string>();
export function shapedMarkup(key: string, build: () => string): string {
  let markup = markups.get(key);
  if (markup === undefined) {
    markup = build();
    if (markups.size < MARKUP_MAX) markups.set(key, markup);
  }
  return markup;
}

/**
 * The numbered tags, made once: a property key made anew per email would be
 * looked up in V8's string table each time it is added to an object.
 */
const NUMBERED: string[] = [];
function numberedTag(n: number): string {
  return (NUMBERED[n] ??= tag(`v${n}`));
}
