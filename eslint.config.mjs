import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".data/", "coverage/", "test/fixtures/", "packages/*/dist/", "packages/*/test/fixtures/"] },
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports", disallowTypeAnnotations: false }],
      eqeqeq: ["error", "always"],
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      "no-console": "off",
    },
  },
  {
    files: ["src/domain/**/*.ts", "src/ports/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: [
          { group: ["@azure/*", "durable-functions"], message: "domain and ports stay free of Azure SDKs and @azure/functions: use a port" },
          { group: ["node:http", "node:https", "**/adapters/**", "**/http/**", "**/local-app/**", "**/app/**", "@aigov/functions-localhost", "@aigov/functions-localhost/*"], message: "domain code talks to ports, not adapters or HTTP" },
        ],
      }],
    },
  },
  {
    files: ["bin/**/*.js", "bench/**/*.mjs", "bench/**/*.cjs", "scripts/**/*.mjs"],
    languageOptions: { globals: { require: "readonly", process: "readonly", console: "readonly", __dirname: "readonly", performance: "readonly" } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
