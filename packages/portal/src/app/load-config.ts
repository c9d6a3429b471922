import { parseConfig, type PortalConfig } from "./config.js";

/** config.json beside index.html. */
export async function loadConfig(): Promise<PortalConfig> {
  // Beside index.html (the build's base), whatever deep link the portal was opened at.
  const res = await fetch(`${import.meta.env.BASE_URL}config.json`, { cache: "no-store" });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  return parseConfig(await res.json());
}
