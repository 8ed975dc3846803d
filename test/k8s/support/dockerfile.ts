/**
 * A small reader of the Dockerfile, enough to carry out its steps outside Docker:
 * line continuations, comments, ARG defaults, stages, and each instruction's flags.
 */
export interface Instruction {
  keyword: string;
  /** Flags such as --from=build or --mount=… */
  flags: Record<string, string>;
  /** The rest of the line after the flags. */
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Parses the Dockerfile's text into stages (ARG defaults substituted in FROM). */
export function parseDockerfile(text: string): Stage[] {
  const logical: Array<{ text: string; line: number }> = [];
  let current = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const trimmed = raw.trim();
    if (!current && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (current && trimmed.startsWith('#')) return;
    if (!current) start = i + 1;
    if (trimmed.endsWith('\\')) {
      current += trimmed.slice(0, -1).trim() + ' ';
      return;
    }
    logical.push({ text: (current + trimmed).trim(), line: start });
    current = '';
  });
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const { text: l, line } of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    const keyword = m[1]!.toUpperCase();
    let rest = m[2]!;
    const flags: Record<string, string> = {};
    for (let f = /^--([\w-]+)=(\S+)\s+/.exec(rest); f; f = /^--([\w-]+)=(\S+)\s+/.exec(rest)) {
      flags[f[1]!] = f[2]!;
      rest = rest.slice(f[0].length);
    }
    if (keyword === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      args[k!.trim()] = (v ?? '').trim();
      continue;
    }
    if (keyword === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!;
      const from = fm[1]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? '');
      stages.push({ name: fm[2] ?? String(stages.length), from, instructions: [] });
      continue;
    }
    if (!stages.length) throw new Error(`Dockerfile line ${line}: ${keyword} before FROM`);
    stages.at(-1)!.instructions.push({ keyword, flags, args: rest, line });
  }
  return stages;
}

/** ENV's `k=v` pairs (values may be quoted). */
export function parseEnv(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S+)/g)) out[m[1]!] = m[2]!.replace(/^["']|["']$/g, '');
  return out;
}

/** An exec-form JSON array (ENTRYPOINT, CMD), or the shell form as one string. */
export function parseExec(args: string): string[] {
  return args.trim().startsWith('[') ? (JSON.parse(args) as string[]) : ['/bin/sh', '-c', args];
}
