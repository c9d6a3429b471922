import { Card, Caption1, Select, Field, Subtitle2, Title3, makeStyles, tokens } from "@fluentui/react-components";
import { LineChart } from "@fluentui/react-charts";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useClient } from "../app/api.js";
import { DataTable, ErrorBar, Loading, PageHeader, Section } from "../app/ui.js";

const RANGES = { "24h": 24, "7d": 7 * 24, "30d": 30 * 24 } as const;

const useStyles = makeStyles({
  cards: { display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(180px, 1fr))", gap: tokens.spacingHorizontalM },
  card: { padding: tokens.spacingHorizontalL },
});

const fmt = (n: number | undefined, digits = 0) => (n === undefined ? "–" : n.toLocaleString(undefined, { maximumFractionDigits: digits }));

/** The model governance dashboard: usage, cost, latency percentiles and enforcement (refusals by cause) per model. */
export default function Dashboard() {
  const s = useStyles();
  const client = useClient();
  const [range, setRange] = useState<keyof typeof RANGES>("24h");
  const usage = useQuery({
    queryKey: ["usage", "tenant", range],
    queryFn: () => {
      const to = new Date();
      const from = new Date(to.getTime() - RANGES[range] * 3600_000);
      return client.usage.tenant({ from: from.toISOString(), to: to.toISOString(), groupBy: "resource", kind: "model" });
    },
  });
  const gateway = useQuery({ queryKey: ["drift"], queryFn: () => client.policy.drift() });
  return (
    <>
      <PageHeader title="Model governance">
        <Field label="Range">
          <Select value={range} onChange={(_, d) => setRange(d.value as keyof typeof RANGES)}>
            {Object.keys(RANGES).map((r) => (
              <option key={r}>{r}</option>
            ))}
          </Select>
        </Field>
      </PageHeader>
      {usage.isPending ? <Loading label="Loading usage" /> : null}
      <ErrorBar error={usage.error} onRetry={() => void usage.refetch()} />
      {usage.data ? (
        <>
          <Section label="Totals">
            <div className={s.cards}>
              <Card className={s.card}>
                <Caption1>Requests</Caption1>
                <Title3 as="p">{fmt(usage.data.totals.requests)}</Title3>
              </Card>
              <Card className={s.card}>
                <Caption1>Tokens</Caption1>
                <Title3 as="p">{fmt(usage.data.totals.tokens.total)}</Title3>
              </Card>
              <Card className={s.card}>
                <Caption1>Cost</Caption1>
                <Title3 as="p">{usage.data.totals.cost.map((c) => `${fmt(c.amount, 2)} ${c.currency}`).join(" · ") || "–"}</Title3>
              </Card>
              <Card className={s.card}>
                <Caption1>Gateway latency p50 / p95 / p99 (ms)</Caption1>
                <Title3 as="p">
                  {fmt(usage.data.totals.latencyMs.gateway.p50)} / {fmt(usage.data.totals.latencyMs.gateway.p95)} / {fmt(usage.data.totals.latencyMs.gateway.p99)}
                </Title3>
              </Card>
              <Card className={s.card}>
                <Caption1>Refused by governance</Caption1>
                <Title3 as="p">{fmt(usage.data.totals.errors.scope + usage.data.totals.errors.limit + usage.data.totals.errors.contentSafety)}</Title3>
              </Card>
            </div>
          </Section>
          <Section label="Requests over time">
            <Subtitle2 as="h2">Requests over time</Subtitle2>
            {usage.data.series.length ? (
              <LineChart
                height={240}
                data={{
                  chartTitle: "Requests and refusals over time",
                  lineChartData: [
                    { legend: "Requests", data: usage.data.series.map((b) => ({ x: new Date(b.bucket), y: b.requests })) },
                    { legend: "Refused", data: usage.data.series.map((b) => ({ x: new Date(b.bucket), y: b.errors.scope + b.errors.limit + b.errors.contentSafety })) },
                  ],
                }}
              />
            ) : (
              <Caption1 as="p" role="status">
                No requests in this range.
              </Caption1>
            )}
          </Section>
          <Section label="Per model">
            <Subtitle2 as="h2">Per model</Subtitle2>
            <DataTable
              label="Usage and enforcement per model"
              empty="No model was called in this range."
              rowKey={(g) => `${g.projectId ?? ""}/${g.resource ?? ""}`}
              rows={usage.data.groups}
              columns={[
                { key: "resource", label: "Model" },
                { key: "requests", label: "Requests", render: (g) => fmt(g.summary.requests) },
                { key: "tokens", label: "Tokens", render: (g) => fmt(g.summary.tokens.total) },
                { key: "p95", label: "Latency p95 (ms)", render: (g) => fmt(g.summary.latencyMs.gateway.p95) },
                { key: "limit", label: "Limited", render: (g) => fmt(g.summary.errors.limit) },
                { key: "scope", label: "Out of scope", render: (g) => fmt(g.summary.errors.scope) },
                { key: "cs", label: "Content safety", render: (g) => fmt(g.summary.errors.contentSafety) },
                { key: "backend", label: "Backend errors", render: (g) => fmt(g.summary.errors.backend) },
              ]}
            />
          </Section>
        </>
      ) : null}
      <Section label="Gateway">
        <Subtitle2 as="h2">Gateway</Subtitle2>
        {gateway.isPending ? <Loading label="Loading drift report" /> : null}
        <ErrorBar error={gateway.error} />
        {gateway.data ? <Caption1 as="p">Drift: {gateway.data.status}{gateway.data.checkedAt ? ` (checked ${new Date(gateway.data.checkedAt).toLocaleString()})` : ""}</Caption1> : null}
      </Section>
    </>
  );
}
