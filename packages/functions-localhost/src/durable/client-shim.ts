// Makes the library's DurableClient present the host's system key on its calls to the durable HTTP API.
//
// In Azure the client calls the extension on a loopback-only RPC endpoint that needs no key; here the
// RPC endpoint is the host's own port, which requires the key (system-key.ts). The binding data carries
// the key the way Azure's does (`code=` in requiredQueryStringParameters and in the management URLs),
// but in rpcBaseUrl mode the library builds its own URLs without it. So the client's axios instance gets
// an interceptor that adds `x-functions-key` to requests for the binding's own base URLs (never to any
// other URL). Installed on the first durableClient binding, just before the function that asked for it
// runs: durable-functions is not loaded at start-up (ADR 004). Pinned to durable-functions 3.5.0.

/* eslint-disable @typescript-eslint/no-require-imports -- durable-functions is loaded on first use, on purpose */

interface ClientData {
  rpcBaseUrl?: string;
  baseUrl?: string;
  requiredQueryStringParameters?: string;
}

interface AxiosLike {
  interceptors: { request: { use(f: (config: { url?: string; baseURL?: string; headers: Record<string, unknown> & { set?: (k: string, v: string) => void } }) => unknown): void } };
}

type ClientClass = new (data: ClientData) => { axiosInstance: AxiosLike };

let installed = false;

export function installDurableClientKeyShim(): void {
  if (installed) return;
  const mod = require("durable-functions/lib/src/durableClient/DurableClient") as { DurableClient: ClientClass & { __aigovKeyed?: true } };
  if (!mod.DurableClient.__aigovKeyed) {
    const Base = mod.DurableClient;
    class KeyedDurableClient extends Base {
      constructor(data: ClientData) {
        super(data);
        const key = new URLSearchParams(data?.requiredQueryStringParameters ?? "").get("code");
        const bases = [data?.rpcBaseUrl, data?.baseUrl].filter((b): b is string => typeof b === "string" && b !== "").map((b) => (b.endsWith("/") ? b : `${b}/`));
        if (!key || bases.length === 0) return;
        this.axiosInstance.interceptors.request.use((config) => {
          const url = config.url ?? "";
          if (bases.some((b) => url.startsWith(b))) {
            if (typeof config.headers.set === "function") config.headers.set("x-functions-key", key);
            else config.headers["x-functions-key"] = key;
          }
          return config;
        });
      }
    }
    mod.DurableClient = Object.assign(KeyedDurableClient, { __aigovKeyed: true as const });
  }
  installed = true;
}
