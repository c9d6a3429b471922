// The browser build's node:crypto (vite.config.ts): server code paths only, never called in the portal.
const serverOnly = (name: string) => () => {
  throw new Error(`node:crypto ${name} is server-only and not available in the portal`);
};
export const createHash = serverOnly("createHash");
export const createHmac = serverOnly("createHmac");
export const randomBytes = serverOnly("randomBytes");
export const timingSafeEqual = serverOnly("timingSafeEqual");
export const randomUUID = () => globalThis.crypto.randomUUID();
