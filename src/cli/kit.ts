/**
 * What every command group gets: the pillars' CLI kit (the API client, printing, JSON files) plus
 * the process I/O and the global options. Built-in groups (commands/*.ts) and pillar groups
 * (src/pillars/<name>/index.ts `cli`) add their commands to the same program with it.
 */
import Table from "cli-table3";
import { CommanderError } from "commander";
import { type AigovClient, ApiError } from "../client/index.js";
import { type PillarCliKit } from "../pillars/pillar.js";

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** What was piped to the process, read to the end; undefined when stdin is a terminal (default: the process's stdin). */
  stdin?: () => string | undefined;
  /** MSAL's HTTP client for the Entra sign-in (tests: a local fake of Entra ID); MSAL's own otherwise. */
  msalNetwork?: import("@azure/msal-node").INetworkModule;
}

export type Output = "table" | "json";
export type Row = Record<string, unknown>;

/** The program's global options. */
export interface Globals {
  profile?: string;
  endpoint?: string;
  output: Output;
}

export interface CliKit extends PillarCliKit<AigovClient> {
  io: CliIo;
  globals(): Globals;
  /** CliIo.stdin, or the process's. */
  stdin(): string | undefined;
}

/** Prints JSON (with `-o json`, or without columns) or a table of the given columns. */
export function render(io: CliIo, output: Output, value: unknown, columns?: string[]): void {
  if (output === "json" || !columns) {
    io.out(JSON.stringify(value, null, 2));
    return;
  }
  const rows: Row[] = Array.isArray(value) ? (value as Row[]) : [value as Row];
  const table = new Table({ head: columns, style: { head: [], border: [] } });
  for (const row of rows) {
    table.push(columns.map((c) => {
      const v = row[c];
      return v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    }));
  }
  io.out(table.toString());
}

/** A --budget value, '5000 USD/Monthly' → { amount, currency, period } (a usage error otherwise). */
export function parseBudget(value: string): { amount: number; currency: string; period: string } {
  const m = /^([\d.]+)\s*([A-Z]{3})\/(\w+)$/.exec(value.trim());
  if (!m) throw new CommanderError(2, "aigov.budget", `--budget expects e.g. '5000 USD/Monthly', got '${value}'`);
  return { amount: Number(m[1]), currency: m[2]!, period: m[3]! };
}

/** A refusal as one line, as `aigov` prints its error: `403 Forbidden (key_suspended_by_admin): an admin suspended …`. */
export function problemLine(e: unknown): string {
  if (!(e instanceof ApiError)) return e instanceof Error ? e.message : String(e);
  const p = e.problem;
  return p ? `${p.status} ${p.code}${p.reason ? ` (${p.reason})` : ""}: ${p.detail ?? p.title}` : `HTTP ${e.status}`;
}
