import { Badge, Button, Field, Input, Radio, RadioGroup, Select, Subtitle2, Textarea, makeStyles, tokens } from "@fluentui/react-components";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useClient } from "../app/api.js";
import { useConfig } from "../app/config-context.js";
import { DataTable, Empty, ErrorBar, PageHeader, Section } from "../app/ui.js";
import { useAllPages } from "../app/paging.js";
import { ProjectSelect } from "../app/projects.js";

const useStyles = makeStyles({
  pre: { fontFamily: tokens.fontFamilyMonospace, whiteSpace: "pre-wrap", maxHeight: "40vh", overflow: "auto", padding: tokens.spacingHorizontalM, backgroundColor: tokens.colorNeutralBackground1 },
  row: { display: "flex", gap: tokens.spacingHorizontalM, flexWrap: "wrap", alignItems: "end" },
});

/** Response headers that carry governance: limits left, deprecation, refusals' reasons. */
const GOVERNANCE = /^(sunset|deprecation|retry-after|x-ratelimit-|x-aigov-|remaining-|x-remaining|x-ms-|consumed-tokens|x-tokens|x-quota|link$)/i;

interface Answer {
  status: number;
  headers: [string, string][];
  body: string;
}

/**
 * Build: real requests through the gateway with the developer's own key. The key is typed here and kept
 * only in this screen's state (never stored or cached); the gateway decides, the page shows its answer.
 */
export default function Playground() {
  const s = useStyles();
  const client = useClient();
  const config = useConfig();
  const [tab, setTab] = useState<"model" | "tool">("model");
  const [projectId, setProjectId] = useState("");
  const [key, setKey] = useState("");
  const [model, setModel] = useState("");
  const [prompt, setPrompt] = useState("Hello");
  const [api, setApi] = useState("");
  const [tool, setTool] = useState("");
  const [args, setArgs] = useState("{}");
  const [answer, setAnswer] = useState<Answer>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const apis = useQuery({
    queryKey: ["apiPaths", projectId],
    queryFn: async () => (await client.policy.show(projectId)).artifacts.filter((a) => a.kind === "api").map((a) => ({ id: String(a.id ?? a.ref), path: String(a.path ?? "") })),
    enabled: !!projectId,
  });
  const models = useAllPages(["models", projectId, "all"], () => client.models.list(projectId, { maxPageSize: 100 }), { enabled: !!projectId });
  const base = config.gatewayUrl ? new URL(config.gatewayUrl, location.href).href.replace(/\/$/, "") : undefined;
  const modelApi = apis.data?.find((a) => !a.path.includes("/mcp") && !/-(mcp|rest|tbx|agt)-/.test(a.id))?.path ?? apis.data?.[0]?.path;

  // The gateway is another origin: only the headers its cors policy allows are sent (the MCP version to MCP servers only).
  const send = async (url: string, body: unknown, mcp: boolean) => {
    setBusy(true);
    setError(undefined);
    setAnswer(undefined);
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "api-key": key, ...(mcp ? { "mcp-protocol-version": "2025-06-18" } : {}) },
        body: JSON.stringify(body),
      });
      setAnswer({ status: res.status, headers: [...res.headers.entries()], body: await res.text() });
    } catch (err) {
      // A fetch that fails outright is an answer the browser would not show this page: one without CORS headers.
      setError(
        err instanceof TypeError
          ? new Error(
              "The gateway's answer cannot be read here: it carries no CORS headers. The gateway refuses a missing or invalid key before any policy runs, so this is most often the key; otherwise this portal's origin is not among the gateway's browser origins, or the gateway is unreachable.",
            )
          : err,
      );
    } finally {
      setBusy(false);
    }
  };

  if (!base) return <Empty>No gateway URL is configured for this portal (config.json gatewayUrl).</Empty>;
  const pretty = (text: string) => {
    const data = text.split("\n").find((l) => l.startsWith("data:"));
    try {
      return JSON.stringify(JSON.parse(data ? data.slice(5) : text), null, 2);
    } catch {
      return text;
    }
  };
  return (
    <>
      <PageHeader title="Playground" />
      <Field label="Send to">
        <RadioGroup layout="horizontal" value={tab} onChange={(_, d) => setTab(d.value as "model" | "tool")}>
          <Radio value="model" label="A model" />
          <Radio value="tool" label="A tool" />
        </RadioGroup>
      </Field>
      <Section label="Request">
        <div className={s.row}>
          <ProjectSelect label="Project" value={projectId} onChange={setProjectId} none="Choose a project" required />
          <Field label="Your key" hint="Sent to the gateway only; not kept">
            <Input type="password" autoComplete="off" value={key} onChange={(_, d) => setKey(d.value)} />
          </Field>
        </div>
        <ErrorBar error={apis.error} />
        {tab === "model" ? (
          <form
            aria-label="Model request"
            onSubmit={(e) => {
              e.preventDefault();
              void send(`${base}/${modelApi}/v1/chat/completions`, { model, messages: [{ role: "user", content: prompt }] }, false);
            }}
          >
            <Field label="Model">
              <Select value={model} onChange={(_, d) => setModel(d.value)}>
                <option value="">Choose a model</option>
                {(models.data?.items ?? []).map((m) => (
                  <option key={m.id}>{m.name}</option>
                ))}
              </Select>
            </Field>
            <Field label="Prompt">
              <Textarea value={prompt} onChange={(_, d) => setPrompt(d.value)} />
            </Field>
            <Button appearance="primary" type="submit" disabled={busy || !modelApi || !key || !model}>
              Send
            </Button>
          </form>
        ) : (
          <form
            aria-label="Tool request"
            onSubmit={(e) => {
              e.preventDefault();
              let parsed: unknown = {};
              try {
                parsed = JSON.parse(args || "{}");
              } catch {
                setError(new Error("arguments are not JSON"));
                return;
              }
              void send(`${base}/${api}/mcp`, { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: parsed } }, true);
            }}
          >
            <Field label="MCP API">
              <Select value={api} onChange={(_, d) => setApi(d.value)}>
                <option value="">Choose an API</option>
                {(apis.data ?? []).map((a) => (
                  <option key={a.path} value={a.path}>
                    {a.path}
                  </option>
                ))}
              </Select>
            </Field>
            <Field label="Tool">
              <Input value={tool} onChange={(_, d) => setTool(d.value)} />
            </Field>
            <Field label="Arguments (JSON)">
              <Textarea value={args} onChange={(_, d) => setArgs(d.value)} />
            </Field>
            <Button appearance="primary" type="submit" disabled={busy || !api || !key || !tool}>
              Call tool
            </Button>
          </form>
        )}
      </Section>
      <ErrorBar error={error} />
      {answer ? (
        <Section label="Answer">
          <Subtitle2 as="h2">
            Answer <Badge appearance="filled" color={answer.status < 400 ? "success" : "danger"} data-testid="playground-status">{answer.status}</Badge>
          </Subtitle2>
          <DataTable
            label="Governance headers"
            empty="No governance header in this answer."
            rows={answer.headers.filter(([name]) => GOVERNANCE.test(name)).map(([name, value]) => ({ name, value }))}
            rowKey={(h) => h.name}
            columns={[
              { key: "name", label: "Header" },
              { key: "value", label: "Value" },
            ]}
          />
          <pre className={s.pre} data-testid="playground-body" tabIndex={0} aria-label="Answer body">
            {pretty(answer.body)}
          </pre>
        </Section>
      ) : null}
    </>
  );
}
