/**
 * A pure function of a text, remembered by its input: the engine and the drift
 * email name the same few months and format the same few thousand scores over
 * and over (bench/FINDINGS.md, rounds three and five). At most `max` inputs are
 * kept; past that, the rest are computed each time.
 */
export function memoized(compute: (input: string) => string, max: number): (input: string) => string {
  const seen = new Map<string, string>();
  return (input) => {
    let out = seen.get(input);
    if (out === undefined) {
      out = compute(input);
      if (seen.size < max) seen.set(input, out);
    }
    return out;
  };
}
