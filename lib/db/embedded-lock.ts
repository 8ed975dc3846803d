/**
 * A lock file beside the embedded database: PGlite is single-process, so a second
 * process opening the same folder must wait its turn rather than corrupt it.
 * A lock left by a dead process (kill -9) is taken over.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DependencyError } from '../errors.ts';

/** Takes the lock or throws DependencyError naming the holder; returns the release function. */
export function acquireEmbeddedLock(dataDir: string): () => void {
  const file = path.join(path.dirname(dataDir), `.${path.basename(dataDir)}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        fs.rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(fs.readFileSync(file, 'utf8'));
      if (holder && holder !== process.pid && isAlive(holder)) {
        throw new DependencyError(`embedded database ${dataDir} is in use by another process (pid ${holder})`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new DependencyError(`embedded database ${dataDir} lock could not be taken`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
