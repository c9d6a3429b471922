import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app/App.js";
import { loadConfig } from "./app/load-config.js";
import { ConfigContext } from "./app/config-context.js";

const root = createRoot(document.getElementById("root")!);
loadConfig().then(
  (config) =>
    root.render(
      <StrictMode>
        <ConfigContext.Provider value={config}>
          <App config={config} />
        </ConfigContext.Provider>
      </StrictMode>,
    ),
  (err: unknown) => root.render(<p role="alert">The portal could not start: {err instanceof Error ? err.message : String(err)}</p>),
);
