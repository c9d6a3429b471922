import { FluentProvider, webDarkTheme, webLightTheme } from "@fluentui/react-components";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { lazy, useEffect, useState } from "react";
import { BrowserRouter, Navigate, Route, Routes } from "react-router";
import type { PortalConfig } from "./config.js";
import { Layout } from "./Layout.js";
import { LAST_PROJECT, SessionProvider, useSession } from "./session.js";
import { SignIn } from "../pages/SignIn.js";

// Each screen is its own chunk (route-level code splitting).
const Dashboard = lazy(() => import("../pages/Dashboard.js"));
const Projects = lazy(() => import("../pages/Projects.js"));
const Models = lazy(() => import("../pages/Models.js"));
const Policy = lazy(() => import("../pages/Policy.js"));
const Keys = lazy(() => import("../pages/Keys.js"));
const Tools = lazy(() => import("../pages/Tools.js"));
const Agents = lazy(() => import("../pages/Agents.js"));
const Connections = lazy(() => import("../pages/Connections.js"));
const Approvals = lazy(() => import("../pages/Approvals.js"));
const Exemptions = lazy(() => import("../pages/Exemptions.js"));
const Reviews = lazy(() => import("../pages/Reviews.js"));
const Audit = lazy(() => import("../pages/Audit.js"));
const Catalog = lazy(() => import("../pages/Catalog.js"));
const Playground = lazy(() => import("../pages/Playground.js"));

// A refusal (4xx) is an answer, not a glitch: only server errors and network failures are retried.
const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (n, err) => {
        const status = (err as { status?: number }).status; // ApiError's, by shape (the client loads lazily)
        return n < 2 && (status === undefined || status >= 500);
      },
      staleTime: 5_000,
    },
  },
});

const THEME = "aigov.theme";

function Screens() {
  const { session } = useSession();
  if (!session) return <SignIn />;
  return (
    <Routes>
      <Route path="/" element={<Dashboard />} />
      <Route path="/projects" element={<Projects />} />
      <Route path="/projects/:projectId" element={<Projects />} />
      {(["models", "policy", "keys", "tools", "agents"] as const).map((page) => (
        <Route key={page} path={`/${page}`} element={<ProjectRedirect page={page} />} />
      ))}
      <Route path="/projects/:projectId/models" element={<Models />} />
      <Route path="/projects/:projectId/policy" element={<Policy />} />
      <Route path="/projects/:projectId/keys" element={<Keys />} />
      <Route path="/projects/:projectId/tools" element={<Tools />} />
      <Route path="/projects/:projectId/agents" element={<Agents />} />
      <Route path="/connections" element={<Connections />} />
      <Route path="/approvals" element={<Approvals />} />
      <Route path="/approvals/:approvalId" element={<Approvals />} />
      <Route path="/exemptions" element={<Exemptions />} />
      <Route path="/reviews" element={<Reviews />} />
      <Route path="/reviews/:reviewId" element={<Reviews />} />
      <Route path="/audit" element={<Audit />} />
      <Route path="/build/catalog" element={<Catalog />} />
      <Route path="/build/playground" element={<Playground />} />
      <Route path="*" element={<Navigate to="/" replace />} />
    </Routes>
  );
}

/** /models, /keys…: the last project used, else the project list. */
function ProjectRedirect({ page }: { page: string }) {
  const last = sessionStorage.getItem(LAST_PROJECT);
  return <Navigate to={last ? `/projects/${last}/${page}` : "/projects"} replace />;
}

export function App({ config }: { config: PortalConfig }) {
  const [dark, setDark] = useState(() => localStorage.getItem(THEME) === "dark" || (localStorage.getItem(THEME) === null && matchMedia("(prefers-color-scheme: dark)").matches));
  useEffect(() => localStorage.setItem(THEME, dark ? "dark" : "light"), [dark]);
  // Dev mode only: lets the browser tests look into the query cache for secrets (docs/portal.md).
  useEffect(() => {
    if (config.auth.mode === "dev") (window as unknown as { aigovQueryCache?: () => unknown }).aigovQueryCache = () => ({
      queries: queryClient.getQueryCache().getAll().map((q) => q.state.data),
      mutations: queryClient.getMutationCache().getAll().map((m) => m.state.data),
    });
  }, [config]);
  return (
    <FluentProvider theme={dark ? webDarkTheme : webLightTheme}>
      <QueryClientProvider client={queryClient}>
        <SessionProvider auth={config.auth}>
          <BrowserRouter basename="/portal">
            <Layout dark={dark} onDark={setDark}>
              <Screens />
            </Layout>
          </BrowserRouter>
        </SessionProvider>
      </QueryClientProvider>
    </FluentProvider>
  );
}

