/**
 * The gateway's folder as the snapshot loader and the change poller see it: every .json and .xml file
 * under the root with a stamp (size, modification time, inode) that changes whenever the file does. The
 * publisher writes by write-then-rename, so each write is a new inode. A hand edit in place changes the
 * modification time, but only as finely as the file system's clock ticks (milliseconds): a second edit
 * of the same size within the tick of the first keeps the stamp. So a file modified within RACY_MS of
 * the scan is `recent`, and what was read of it is not trusted later (as git treats "racily clean" files).
 */
import { readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * The file a publish to the folder replaces when it ends (the local publisher: src/adapters/local/file-publisher.ts),
 * so the gateway's poller sees a publish by one stat, without looking at every file. Not a .json or .xml file:
 * no scan and no snapshot reads it.
 */
export const PUBLISHED_MARKER = ".published";

/** Replaces the marker (write then rename: a new inode, so its stamp changes even within the clock's tick). */
export async function markPublished(root: string): Promise<void> {
  const file = join(root, PUBLISHED_MARKER);
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, new Date().toISOString());
  await rename(tmp, file);
}

/** The marker's stamp ("" when there is none yet). */
export async function publishedStamp(root: string): Promise<string> {
  try {
    const st = await stat(join(root, PUBLISHED_MARKER));
    return `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    return "";
  }
}

/** Modified this close to the scan: the file may change again without its stamp changing. */
const RACY_MS = 100;

export interface FileStamp {
  stamp: string;
  recent: boolean;
}

/** Absolute path → stamp, for the .json and .xml files under the root. */
export type FolderScan = Map<string, FileStamp>;

export async function scanFolder(root: string): Promise<FolderScan> {
  const out: FolderScan = new Map();
  const started = Date.now();
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return; // removed while walking (a publish deleting an API): the next look sees the folder as it is then
    }
    const files: string[] = [];
    const dirs: string[] = [];
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) dirs.push(path);
      else if (e.name.endsWith(".json") || e.name.endsWith(".xml")) files.push(path);
    }
    const stamps = await Promise.all(files.map((f) => stat(f).then((st): FileStamp => ({ stamp: `${st.size}:${st.mtimeMs}:${st.ino}`, recent: st.mtimeMs >= started - RACY_MS }), () => undefined)));
    files.forEach((f, i) => {
      if (stamps[i] !== undefined) out.set(f, stamps[i]);
    });
    for (const d of dirs) await walk(d);
  };
  await walk(root);
  return out;
}

/** The whole folder as one string: it changes when any file is added, removed or changed. */
export function folderStamp(scan: FolderScan): string {
  return [...scan].map(([path, { stamp }]) => `${path}:${stamp}`).sort().join("\n");
}

/** Some file was modified so close to the scan that it may change again unseen: look again next time. */
export function unsettled(scan: FolderScan): boolean {
  for (const f of scan.values()) if (f.recent) return true;
  return false;
}

/**
 * File texts kept between loads by stamp: a reload reads only what changed since the last one (a
 * 200-tool server is about a thousand files, and a publish usually changes a few).
 */
export class FileTexts {
  private texts = new Map<string, { stamp: string; text: string; settled: boolean }>();

  /** The file's text as of `at` (from the scan this load is based on). ENOENT when it went since. */
  async read(path: string, at: FileStamp): Promise<string> {
    const kept = this.texts.get(path);
    if (kept?.settled && kept.stamp === at.stamp) return kept.text;
    const text = await readFile(path, "utf8");
    this.texts.set(path, { stamp: at.stamp, text, settled: !at.recent });
    return text;
  }

  /** Forgets files that are no longer in the folder. */
  keepOnly(scan: FolderScan): void {
    for (const path of this.texts.keys()) if (!scan.has(path)) this.texts.delete(path);
  }
}
