import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { readJsonFile } from "../util/json-file.js";

export interface Profile {
  endpoint: string;
  /** A bearer token given at login (--dev, --token). */
  token?: string;
  /** An Entra ID sign-in (--entra): tokens come from MSAL's cache (entra.ts), never from this file. */
  entra?: import("./entra.js").EntraProfile;
}

interface ProfileFile {
  current: string;
  profiles: Record<string, Profile>;
}

export const DEFAULT_ENDPOINT = "http://127.0.0.1:7071";

/** Profiles live in ~/.aigov/config.json (or $AIGOV_CONFIG), readable by the user only: they hold tokens. */
export function profilePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.AIGOV_CONFIG ?? join(homedir(), ".aigov", "config.json");
}

/** MSAL's token cache of the Entra sign-ins, beside the profiles. */
export function tokenCachePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(dirname(profilePath(env)), "msal-cache.json");
}

export function readProfiles(path: string): ProfileFile {
  if (!existsSync(path)) return { current: "default", profiles: {} };
  return readJsonFile(path) as ProfileFile;
}

export function saveProfile(path: string, name: string, profile: Profile): void {
  const file = readProfiles(path);
  file.profiles[name] = profile;
  file.current = name;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, JSON.stringify(file, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600);
}

export function resolveProfile(path: string, name: string | undefined): Profile {
  const file = readProfiles(path);
  return file.profiles[name ?? file.current] ?? { endpoint: DEFAULT_ENDPOINT };
}
