import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * The portal is served at /portal/ (by the local host, and by Static Web Apps in Azure: ADR 019).
 * It reaches the server only through the app's typed client (src/client), whose operation schemas are
 * shared with the server; a few server modules those schemas import use node:crypto for ids and hashes
 * the browser never computes, so node:crypto resolves to a module that throws if it is ever called.
 */
export default defineConfig({
  base: "/portal/",
  plugins: [react()],
  resolve: {
    alias: [{ find: /^node:crypto$/, replacement: fileURLToPath(new URL("./src/shims/node-crypto.ts", import.meta.url)) }],
  },
  build: {
    outDir: fileURLToPath(new URL("../../dist/portal-site/portal", import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1500,
  },
});
