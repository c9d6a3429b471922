import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const localhost = (file: string) => fileURLToPath(new URL(`./packages/functions-localhost/src/${file}`, import.meta.url));

export default defineConfig({
  // The app's tests run the local host's sources, as they run the app's (child processes run the compiled package).
  resolve: {
    alias: [
      { find: /^@aigov\/functions-localhost$/, replacement: localhost("index.ts") },
      { find: /^@aigov\/functions-localhost\/core-shim$/, replacement: localhost("core-shim.ts") },
      { find: /^@aigov\/functions-localhost\/durable$/, replacement: localhost("durable/index.ts") },
    ],
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    reporters: ["default"],
    projects: [
      // The app: test/ (unit, integration, conformance, gateway, e2e, local-app).
      { extends: true, test: { name: "aigov", include: ["test/**/*.test.ts"] } },
      // The local host's own tests (packages/functions-localhost/test), with its own config.
      "packages/functions-localhost",
    ],
  },
});
