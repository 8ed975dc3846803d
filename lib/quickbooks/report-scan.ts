/**
 * A JSON reader for Intuit's report answers that leaves the money cells in the
 * text: each `ColData` list becomes a Cells (the offsets of its cells' `value`
 * strings) instead of an array of `{ value }` objects; everything else comes out
 * as JSON.parse would build it.
 *
 * Why: a monthly report is ~1,100 cells; JSON.parse made an object and a string
 * for each, ~2,200 short-lived objects per report, two reports per integration:
 * with the parse itself, about a third of the job's CPU went to building and
 * collecting them (bench/FINDINGS.md, round three). The mapping reads the amounts
 * straight from the text (amounts.ts, HUNDREDTHS).
 *
 * It is strict JSON (RFC 8259, as JSON.parse) and gives up (returns undefined) on
 * anything outside the shape it expects: a cell that is not an object, a `value`
 * that is not a plain string, an escape inside a `value`, a `__proto__` key, a
 * document that is not an object. The caller then uses JSON.parse and the
 * reference mapping, so giving up costs time, never a different result.
 */

/**
 * The offsets of all the cells of one report: [start, end] of each cell's `value`
 * string, in the order read. Gathered in a scratch typed array shared by all scans
 * (a scan runs to its end without yielding), then copied once into a plain array
 * of the exact size: one array per report, not one per ColData list (a growing
 * array per list was a seventh of the job's allocated bytes), and no typed array
 * per report either (a 16 kB ArrayBuffer per report cost ~30 us to allocate).
 */
let scratch = new Int32Array(8192);

class CellStore {
  data: ArrayLike<number> = scratch;
  used = 0;

  push(start: number, end: number): void {
    if (this.used + 2 > scratch.length) {
      const bigger = new Int32Array(scratch.length * 2);
      bigger.set(scratch);
      scratch = bigger;
      this.data = scratch;
    }
    scratch[this.used++] = start;
    scratch[this.used++] = end;
  }

  /** Copies the offsets out of the scratch array, before the next scan reuses it. */
  seal(): void {
    const data = new Array<number>(this.used);
    for (let i = 0; i < this.used; i++) data[i] = scratch[i]!;
    this.data = data;
  }
}

/** A `ColData` list kept in the text: for cell i, the offsets of its `value` string, or -1 when it has none. */
export class Cells {
  readonly source: string;
  readonly #store: CellStore;
  /** Where this list's cells start in the store (in cells), and how many. */
  readonly #first: number;
  readonly length: number;

  constructor(source: string, store: CellStore, first: number, length: number) {
    this.source = source;
    this.#store = store;
    this.#first = first;
    this.length = length;
  }

  /** Cell i's `value` start and end in `source` (start -1: no cell, or no value). */
  start(i: number): number {
    return i < this.length ? this.#store.data[2 * (this.#first + i)]! : -1;
  }

  end(i: number): number {
    return this.#store.data[2 * (this.#first + i) + 1]!;
  }

  /** Cell i's `value`, as JSON.parse would give `ColData[i]?.value`. */
  value(i: number): string | undefined {
    const s = this.start(i);
    return s < 0 ? undefined : this.source.slice(s, this.end(i));
  }
}

/** A report read by scanReport: its tree (ColData lists as Cells) and the text, for the JSON.parse fallback. */
export class ScannedReport {
  readonly tree: Record<string, unknown>;
  readonly text: string;

  constructor(tree: Record<string, unknown>, text: string) {
    this.tree = tree;
    this.text = text;
  }
}

/** The keys of Intuit's report answers (Header, Columns, Rows and their parts), by their first character. */
const REPORT_KEYS = ['Header', 'Time', 'ReportName', 'ReportBasis', 'DateMacro', 'StartPeriod', 'EndPeriod', 'SummarizeColumnsBy', 'Currency', 'Option', 'Name', 'Value', 'Columns', 'Column', 'ColTitle', 'ColType', 'MetaData', 'Rows', 'Row', 'ColData', 'Summary', 'type', 'group', 'value', 'id', 'href'];
const KEYS_BY_FIRST: Array<string[] | undefined> = [];
for (const key of REPORT_KEYS) (KEYS_BY_FIRST[key.charCodeAt(0)] ??= []).push(key);

/** Thrown inside the scanner when the text leaves the shape it reads; caught by scanReport. */
const GIVE_UP = new Error('not a report the scanner reads');

/** The report as a ScannedReport, or undefined: use JSON.parse. */
export function scanReport(text: string): ScannedReport | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.ws();
    if (text.charCodeAt(scanner.pos) !== 123) return undefined; // '{': a report is an object
    const tree = scanner.value() as Record<string, unknown>;
    scanner.ws();
    if (scanner.pos !== text.length) return undefined;
    scanner.store.seal();
    return new ScannedReport(tree, text);
  } catch {
    return undefined;
  }
}

class Scanner {
  readonly s: string;
  pos = 0;
  readonly store = new CellStore();

  constructor(s: string) {
    this.s = s;
  }

  ws(): void {
    const s = this.s;
    let c = s.charCodeAt(this.pos);
    while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++this.pos);
  }

  expect(code: number): void {
    this.ws();
    if (this.s.charCodeAt(this.pos) !== code) throw GIVE_UP;
    this.pos++;
  }

  value(): unknown {
    this.ws();
    const c = this.s.charCodeAt(this.pos);
    if (c === 123) return this.object();
    if (c === 91) return this.array();
    if (c === 34) return this.string();
    if (c === 45 || (c >= 48 && c <= 57)) return this.number();
    if (this.s.startsWith('true', this.pos)) return this.literal(4, true);
    if (this.s.startsWith('false', this.pos)) return this.literal(5, false);
    if (this.s.startsWith('null', this.pos)) return this.literal(4, null);
    throw GIVE_UP;
  }

  literal<T>(length: number, value: T): T {
    this.pos += length;
    return value;
  }

  object(): Record<string, unknown> {
    this.pos++; // '{'
    const o: Record<string, unknown> = {};
    this.ws();
    if (this.s.charCodeAt(this.pos) === 125) {
      this.pos++;
      return o;
    }
    for (;;) {
      this.ws();
      if (this.s.charCodeAt(this.pos) !== 34) throw GIVE_UP;
      const key = this.knownKey() ?? this.string();
      // An own `__proto__` (what JSON.parse makes) cannot be made by assignment.
      if (key === '__proto__') throw GIVE_UP;
      this.expect(58); // ':'
      o[key] = key === 'ColData' ? this.cells() : this.value();
      this.ws();
      const c = this.s.charCodeAt(this.pos++);
      if (c === 125) return o; // '}'
      if (c !== 44) throw GIVE_UP; // ','
    }
  }

  /**
   * A key Intuit's reports use, at '"', as the one string of this module (or
   * undefined): an object's keys are then strings V8 already holds, and its
   * properties are added by the same steps report after report. A key sliced
   * from the text had to be looked up in V8's string table at each assignment,
   * and made the scan's objects a third of its time.
   */
  knownKey(): string | undefined {
    const s = this.s;
    const pos = this.pos;
    const keys = KEYS_BY_FIRST[s.charCodeAt(pos + 1)];
    if (keys === undefined) return undefined;
    for (const key of keys) {
      // `"key"` and nothing more: the closing quote right after it.
      if (s.startsWith(key, pos + 1) && s.charCodeAt(pos + 1 + key.length) === 34) {
        this.pos = pos + key.length + 2;
        return key;
      }
    }
    return undefined;
  }

  array(): unknown[] {
    this.pos++; // '['
    const a: unknown[] = [];
    this.ws();
    if (this.s.charCodeAt(this.pos) === 93) {
      this.pos++;
      return a;
    }
    for (;;) {
      a.push(this.value());
      this.ws();
      const c = this.s.charCodeAt(this.pos++);
      if (c === 93) return a; // ']'
      if (c !== 44) throw GIVE_UP;
    }
  }

  /** A string at '"'; escapes are decoded by JSON.parse (rare in a report). */
  string(): string {
    const s = this.s;
    const start = ++this.pos;
    let escaped = false;
    for (;;) {
      const c = s.charCodeAt(this.pos);
      if (c === 34) break;
      if (!(c >= 32)) throw GIVE_UP; // a control character, or the end of the text (NaN)
      if (c === 92) {
        escaped = true;
        this.pos++;
      }
      this.pos++;
    }
    this.pos++;
    return escaped ? (JSON.parse(s.slice(start - 1, this.pos)) as string) : s.slice(start, this.pos - 1);
  }

  /** A number, by JSON's grammar (Number() alone accepts more). */
  number(): number {
    const s = this.s;
    const start = this.pos;
    if (s.charCodeAt(this.pos) === 45) this.pos++;
    if (s.charCodeAt(this.pos) === 48) this.pos++;
    else if (!this.digits()) throw GIVE_UP;
    if (s.charCodeAt(this.pos) === 46) {
      this.pos++;
      if (!this.digits()) throw GIVE_UP;
    }
    const e = s.charCodeAt(this.pos);
    if (e === 101 || e === 69) {
      this.pos++;
      const sign = s.charCodeAt(this.pos);
      if (sign === 43 || sign === 45) this.pos++;
      if (!this.digits()) throw GIVE_UP;
    }
    return Number(s.slice(start, this.pos));
  }

  digits(): boolean {
    const from = this.pos;
    let c = this.s.charCodeAt(this.pos);
    while (c >= 48 && c <= 57) c = this.s.charCodeAt(++this.pos);
    return this.pos > from;
  }

  /**
   * A ColData list: cells that are objects whose `value`, if any, is a string without
   * escapes. The hot loop of the scan (nine cells in ten), so written with a local
   * position and the usual cell, `{"value":"…"}`, matched in place.
   */
  cells(): Cells {
    const s = this.s;
    const store = this.store;
    const first = store.used / 2;
    this.expect(91); // '['
    this.ws();
    if (s.charCodeAt(this.pos) === 93) {
      this.pos++;
      return new Cells(s, store, first, 0);
    }
    for (;;) {
      // Whitespace only when there is some (compact JSON has none): one call fewer a cell.
      if (s.charCodeAt(this.pos) <= 32) this.ws();
      let pos = this.pos;
      let start: number;
      let end: number;
      if (s.startsWith('{"value":"', pos)) {
        // The common cell: find the closing quote, refusing escapes and control characters.
        start = pos + 10;
        pos = start;
        for (;;) {
          const c = s.charCodeAt(pos);
          if (c === 34) break;
          if (!(c >= 32) || c === 92) throw GIVE_UP;
          pos++;
        }
        end = pos++;
        const c = s.charCodeAt(pos);
        if (c === 125) {
          this.pos = pos + 1;
        } else {
          // More keys after `value` (an `id`, an `href`): read them as any object's.
          this.pos = pos;
          this.restOfCell();
        }
      } else {
        [start, end] = this.cell();
      }
      store.push(start, end);
      if (s.charCodeAt(this.pos) <= 32) this.ws();
      const c = s.charCodeAt(this.pos++);
      if (c === 93) return new Cells(s, store, first, store.used / 2 - first);
      if (c !== 44) throw GIVE_UP;
    }
  }

  /** The keys after a cell's `value` (at ',' or whitespace), to its '}'; `value` again gives up (the last would win). */
  restOfCell(): void {
    const s = this.s;
    for (;;) {
      this.ws();
      const c = s.charCodeAt(this.pos++);
      if (c === 125) return;
      if (c !== 44) throw GIVE_UP;
      this.ws();
      if (s.charCodeAt(this.pos) !== 34) throw GIVE_UP;
      if (this.string() === 'value') throw GIVE_UP;
      this.expect(58);
      this.value();
    }
  }

  /** Any other cell, key by key: [start, end] of its `value` string, or [-1, -1]. */
  cell(): [number, number] {
    const s = this.s;
    this.expect(123); // '{'
    let start = -1;
    let end = -1;
    this.ws();
    if (s.charCodeAt(this.pos) === 125) {
      this.pos++;
      return [start, end];
    }
    for (;;) {
      this.ws();
      if (s.charCodeAt(this.pos) !== 34) throw GIVE_UP;
      const key = this.string();
      this.expect(58);
      if (key === 'value') {
        this.ws();
        if (s.charCodeAt(this.pos) !== 34) throw GIVE_UP;
        start = ++this.pos;
        for (;;) {
          const c = s.charCodeAt(this.pos);
          if (c === 34) break;
          if (!(c >= 32) || c === 92) throw GIVE_UP;
          this.pos++;
        }
        end = this.pos++;
      } else {
        this.value(); // id, href…: not read by the mapping
      }
      this.ws();
      const c = s.charCodeAt(this.pos++);
      if (c === 125) return [start, end];
      if (c !== 44) throw GIVE_UP;
    }
  }
}
