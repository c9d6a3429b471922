import { createContext, useContext } from "react";
import type { PortalConfig } from "./config.js";

export const ConfigContext = createContext<PortalConfig>({ auth: { mode: "dev" } });
export const useConfig = () => useContext(ConfigContext);
