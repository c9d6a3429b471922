/* eslint-disable @typescript-eslint/no-explicit-any -- stored documents are arbitrary JSON */
/**
 * Repairs an embedded Cosmos store the server refused to open (`npm run store:repair -- <data dir>`).
 *
 * Nothing is deleted: a damaged snapshot is moved to `cosmos.quarantine-<time>.json` (and what can still be
 * read of it is kept as the new snapshot); damaged journal lines (and lines that can no longer be applied,
 * e.g. to a container only the damaged snapshot defined) are moved, verbatim and in order, to
 * `cosmos.journal.quarantine-<time>.ndjson`; every other line stays in the journal. The report — every
 * document affected, as far as the damaged text still names it, and, for a damaged snapshot, what the
 * journal still restores — is printed and written to `cosmos.repair-<time>.txt`.
 *
 * Run it while the app is stopped: it rewrites the journal.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type JournalLine,
  type Recognised,
  type Snapshot,
  parseSnapshot,
  partitionFieldsOf,
  partitionOfDoc,
  recogniseDocuments,
  salvageSnapshot,
  splitJournal,
  storeFiles,
} from "./cosmos-files.js";
import { documentsOf, loadStore, newAccount } from "./embedded-cosmos.js";

export interface RepairResult {
  /** False when the store was readable and nothing was changed. */
  changed: boolean;
  /** True when the repaired store opens (a dry run of the server's own start-up). */
  opens: boolean;
  /** The report, line by line (also written to `cosmos.repair-<time>.txt` when something changed). */
  report: string[];
  /** Files written beside the store: quarantines and the report. */
  files: string[];
}

const stampOf = (d: Date) => d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");

/** A file name that does not exist yet (a second repair in the same second gets its own files). */
function freshName(dir: string, base: string, ext: string): string {
  for (let i = 0; ; i++) {
    const file = join(dir, `${base}${i === 0 ? "" : `-${i}`}${ext}`);
    if (!existsSync(file)) return file;
  }
}

const describe = (r: Recognised) => `id ${JSON.stringify(r.id)}, partition ${r.partition}`;

/** What a journal line (readable or not) did, by document. */
function affectedBy(line: JournalLine, fields: string[], metaOf: (d: string, c: string) => any): string[] {
  const e = line.entry;
  if (!e) {
    const found = recogniseDocuments(line.text, fields);
    if (found.length === 0) return [`unknown document(s): nothing recognisable in ${Buffer.byteLength(line.text)} bytes`];
    return found.map((r) => `${describe(r)}${r.op === "del" ? " (a delete)" : r.op === "set" ? " (a write)" : ""} — best effort, read from damaged text`);
  }
  const entries = e.op === "group" ? e.entries : [e];
  return entries.flatMap((x) => {
    if (x.op === "schema") return [`database/container definitions (${x.databases.map((db) => db.meta.id).join(", ")})`];
    if (x.op === "del") return [`id ${JSON.stringify(x.id)}, partition ${String(x.pk ?? "unknown")} in ${x.d}/${x.c} (a delete)`];
    return [`id ${JSON.stringify(x.doc.id)}, partition ${partitionOfDoc(x.doc, metaOf(x.d, x.c))} in ${x.d}/${x.c} (a write)`];
  });
}

/** The documents the journal's kept lines write, as they will be after start-up. */
function journalRestores(account: any, kept: JournalLine[]): string[] {
  const touched = new Set<string>();
  for (const l of kept) {
    const e = l.entry;
    if (!e) continue;
    for (const x of e.op === "group" ? e.entries : [e]) if (x.op === "set") touched.add(`${x.d}\u0000${x.c}\u0000${x.doc.id}`);
  }
  const out: string[] = [];
  for (const c of documentsOf(account)) {
    for (const doc of c.docs) if (touched.has(`${c.db}\u0000${c.container}\u0000${doc.id}`)) out.push(`id ${JSON.stringify(doc.id)}, partition ${partitionOfDoc(doc, c.meta)} in ${c.db}/${c.container}`);
  }
  return out;
}

export function repairStore(dataDir: string, now: Date = new Date()): RepairResult {
  const files = storeFiles(dataDir);
  const stamp = stampOf(now);
  const report: string[] = [];
  const written: string[] = [];
  let changed = false;

  // 1. The snapshot.
  let snapshot: Snapshot | undefined;
  let damagedSnapshot: { quarantine: string; problem: string; recognised: Recognised[]; salvaged: number } | undefined;
  const journalText = existsSync(files.journal) ? readFileSync(files.journal, "utf8") : "";
  let lines = splitJournal(journalText);
  if (existsSync(files.snapshot)) {
    const text = readFileSync(files.snapshot, "utf8");
    const parsed = parseSnapshot(text);
    if ("snapshot" in parsed) snapshot = parsed.snapshot;
    else {
      const salvage = salvageSnapshot(text);
      const fields = partitionFieldsOf(salvage.snapshot, lines);
      const quarantine = freshName(dataDir, `cosmos.quarantine-${stamp}`, ".json");
      renameSync(files.snapshot, quarantine);
      written.push(quarantine);
      changed = true;
      if (salvage.snapshot.databases.length > 0) {
        const tmp = `${files.snapshot}.${process.pid}.tmp`;
        writeFileSync(tmp, JSON.stringify(salvage.snapshot));
        renameSync(tmp, files.snapshot);
        snapshot = salvage.snapshot;
      }
      damagedSnapshot = {
        quarantine,
        problem: parsed.problem,
        recognised: recogniseDocuments(text.slice(salvage.damagedAt), fields.length > 0 ? fields : ["tenantId", "scopeId"]),
        salvaged: salvage.documents,
      };
      report.push(
        `The snapshot ${files.snapshot} was unreadable (${parsed.problem}); moved to ${quarantine}.`,
        `  Kept from its readable part: ${salvage.snapshot.databases.reduce((n, db) => n + db.collections.length, 0)} container definition(s) and ${salvage.documents} document(s) (the first ${salvage.damagedAt} of ${text.length} characters).`,
      );
      if (salvage.truncated) report.push("  The file ends early (truncated): documents that were stored after its end cannot be named; compare with a backup if you have one.");
    }
  }

  // 2. The journal: a dry run of the server's start-up finds every line it would refuse. Quarantining a line
  //    can make a later one inapplicable (e.g. a change to a container the quarantined line created): repeat.
  const quarantined: JournalLine[] = [];
  let account = newAccount();
  for (let round = 0; round < 20; round++) {
    account = newAccount();
    const bad = loadStore(account, snapshot, lines);
    if (bad.length === 0) break;
    const badNos = new Set(bad.map((l) => l.no));
    quarantined.push(...bad);
    lines = lines.filter((l) => !badNos.has(l.no));
  }
  const torn = lines.find((l) => l.torn);
  if (torn) {
    quarantined.push({ ...torn, problem: "incomplete last line: a write interrupted by a crash, never acknowledged (start-up ignores it)" });
    lines = lines.filter((l) => l !== torn);
  }
  quarantined.sort((a, b) => a.no - b.no);
  if (quarantined.length > 0) {
    const quarantine = freshName(dataDir, `cosmos.journal.quarantine-${stamp}`, ".ndjson");
    writeFileSync(quarantine, quarantined.map((l) => `${l.text}\n`).join(""), { flag: "wx" });
    written.push(quarantine);
    const tmp = `${files.journal}.${process.pid}.tmp`;
    writeFileSync(tmp, lines.map((l) => `${l.text}\n`).join(""));
    renameSync(tmp, files.journal);
    changed = true;
    const fields = partitionFieldsOf(snapshot, [...lines, ...quarantined]);
    const metas = new Map<string, any>();
    for (const c of documentsOf(account)) metas.set(`${c.db}/${c.container}`, c.meta);
    const metaOf = (d: string, c: string) => metas.get(`${d}/${c}`);
    report.push(
      `${quarantined.length} line(s) of the journal ${files.journal} moved, verbatim and in order, to ${quarantine}; the ${lines.filter((l) => l.entry).length} other line(s) are kept.`,
    );
    for (const l of quarantined) {
      report.push(`  line ${l.no}: ${l.problem}`);
      for (const a of affectedBy(l, fields.length > 0 ? fields : ["tenantId", "scopeId"], metaOf)) report.push(`    - ${a}`);
    }
    if (quarantined.some((l) => !l.torn)) {
      report.push(
        "  Each document above is now as the lines before the quarantined one left it (an older version, or none): check it, and redo the change if it is still wanted.",
      );
    }
  }

  // 3. For a damaged snapshot: the documents it named, and what the journal still restores.
  if (damagedSnapshot) {
    const restores = journalRestores(account, lines);
    const present = new Set(documentsOf(account).flatMap((c) => c.docs.map((d: any) => d.id as string)));
    report.push(`  Documents named in the damaged part of the snapshot (best effort): ${damagedSnapshot.recognised.length === 0 ? "unknown (nothing recognisable)" : damagedSnapshot.recognised.length}`);
    for (const r of damagedSnapshot.recognised) {
      report.push(`    - ${describe(r)}: ${present.has(r.id) ? "present after the repair (restored by the journal)" : `LOST unless recovered by hand from ${damagedSnapshot.quarantine}`}`);
    }
    report.push(`  The journal still restores ${restores.length} document(s)${restores.length > 0 ? ":" : "."}`);
    for (const r of restores) report.push(`    - ${r}`);
  }

  // 4. Does it open now? The same dry run as the server's start-up.
  const check = newAccount();
  const after = existsSync(files.snapshot) ? parseSnapshot(readFileSync(files.snapshot, "utf8")) : undefined;
  let opens = after === undefined || "snapshot" in after;
  if (opens) {
    try {
      opens = loadStore(check, after && "snapshot" in after ? after.snapshot : undefined, splitJournal(existsSync(files.journal) ? readFileSync(files.journal, "utf8") : "")).length === 0;
    } catch {
      opens = false;
    }
  }
  if (!changed) report.push(`The store in ${dataDir} is readable: nothing to repair.`);
  else {
    const total = documentsOf(check).reduce((n, c) => n + c.docs.length, 0);
    report.push(opens ? `Repaired: the store in ${dataDir} opens with ${total} document(s). Start the app again.` : `The store in ${dataDir} still does not open: see the lines above.`);
    const reportFile = freshName(dataDir, `cosmos.repair-${stamp}`, ".txt");
    written.push(reportFile);
    writeFileSync(reportFile, `${[...report, `Files written: ${written.join(", ")}`].join("\n")}\n`);
  }
  return { changed, opens, report, files: written };
}
