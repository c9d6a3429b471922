import { Badge, Button, Field, Input, Select, Subtitle2, Textarea } from "@fluentui/react-components";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";
import { CONTROL_IDS } from "../../../../src/policy/settings.js";
import { useClient } from "../app/api.js";
import { useSession } from "../app/session.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";
import { LoadMore, usePaged } from "../app/paging.js";
import { ProjectSelect } from "../app/projects.js";

/** Time-boxed exemptions: request one (an approval follows), follow it, revoke it; the portfolio review. */
export default function Exemptions() {
  const client = useClient();
  const qc = useQueryClient();
  const { session } = useSession();
  const list = usePaged(["exemptions"], (token) => client.exemptions.list({ maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }));
  const review = useQuery({ queryKey: ["exemptionReview"], queryFn: () => client.exemptions.review({}), retry: false });
  const [control, setControl] = useState<(typeof CONTROL_IDS)[number]>("tokens.perMinute");
  const [projectId, setProjectId] = useState("");
  const [relaxation, setRelaxation] = useState<"limit" | "off">("limit");
  const [value, setValue] = useState("");
  const [category, setCategory] = useState<"waiver" | "mitigated">("waiver");
  const [blocker, setBlocker] = useState("");
  const [affected, setAffected] = useState("");
  const [endState, setEndState] = useState("");
  const [compensating, setCompensating] = useState("");
  const [evidence, setEvidence] = useState("");
  const [days, setDays] = useState("14");
  const [revokeReason, setRevokeReason] = useState("");
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["exemptions"] });
    void qc.invalidateQueries({ queryKey: ["exemptionReview"] });
  };
  const request = useMutation({
    mutationFn: () =>
      client.exemptions.request({
        control,
        scope: projectId ? { level: "project", projectId } : { level: "tenant" },
        relaxation: relaxation === "limit" ? { kind: "limit", value: Number(value) } : { kind: "off" },
        category,
        owner: session?.user ?? "",
        reason: { deliveryBlocker: blocker, affectedControl: affected, expectedEndState: endState },
        compensatingControls: compensating ? [compensating] : [],
        evidence: evidence ? [evidence] : [],
        expiresAt: new Date(Date.now() + Number(days) * 86_400_000).toISOString(),
      }),
    onSuccess: refresh,
  });
  const [renewDays, setRenewDays] = useState("30");
  const [renewEvidence, setRenewEvidence] = useState("");
  const renew = useMutation({
    mutationFn: ({ id, etag }: { id: string; etag: string }) =>
      client.exemptions.renew(id, { expiresAt: new Date(Date.now() + Number(renewDays) * 86_400_000).toISOString(), evidence: [renewEvidence], justification: revokeReason || "renewed from the portal" }, etag),
    onSuccess: refresh,
  });
  const revoke = useMutation({
    mutationFn: ({ id, etag }: { id: string; etag: string }) => client.exemptions.revoke(id, { reason: revokeReason || "revoked from the portal" }, etag),
    onSuccess: refresh,
  });
  return (
    <>
      <PageHeader title="Exemptions" />
      <Section label="Request an exemption">
        <Subtitle2 as="h2">Request an exemption</Subtitle2>
        <FormGrid label="Request an exemption" onSubmit={() => request.mutate()}>
          <Field label="Control">
            <Select value={control} onChange={(_, d) => setControl(d.value as (typeof CONTROL_IDS)[number])}>
              {CONTROL_IDS.map((c) => (
                <option key={c}>{c}</option>
              ))}
            </Select>
          </Field>
          <ProjectSelect label="Project (empty: tenant)" value={projectId} onChange={setProjectId} none="Whole tenant" />
          <Field label="Relaxation">
            <Select value={relaxation} onChange={(_, d) => setRelaxation(d.value as "limit" | "off")}>
              <option value="limit">A higher limit</option>
              <option value="off">Switched off</option>
            </Select>
          </Field>
          {relaxation === "limit" ? (
            <Field label="Limit" required>
              <Input type="number" min={1} value={value} onChange={(_, d) => setValue(d.value)} />
            </Field>
          ) : null}
          <Field label="Category">
            <Select value={category} onChange={(_, d) => setCategory(d.value as "waiver" | "mitigated")}>
              <option value="waiver">waiver</option>
              <option value="mitigated">mitigated</option>
            </Select>
          </Field>
          <Field label="What it blocks" required>
            <Textarea value={blocker} onChange={(_, d) => setBlocker(d.value)} />
          </Field>
          <Field label="How the control is in the way" required>
            <Textarea value={affected} onChange={(_, d) => setAffected(d.value)} />
          </Field>
          <Field label="Expected end state" required>
            <Textarea value={endState} onChange={(_, d) => setEndState(d.value)} />
          </Field>
          <Field label="Compensating control">
            <Input value={compensating} onChange={(_, d) => setCompensating(d.value)} />
          </Field>
          <Field label="Evidence link">
            <Input type="url" value={evidence} onChange={(_, d) => setEvidence(d.value)} />
          </Field>
          <Field label="Days">
            <Input type="number" min={1} value={days} onChange={(_, d) => setDays(d.value)} />
          </Field>
          <Button appearance="primary" type="submit" disabled={request.isPending}>
            Request exemption
          </Button>
        </FormGrid>
        <ErrorBar error={request.error} />
        {request.data ? (
          <Notice>
            Requested: <Link to={`/approvals/${request.data.approvalId}`}>its approval</Link> decides it.
          </Notice>
        ) : null}
      </Section>
      <Section label="Exemptions">
        <Subtitle2 as="h2">Exemptions</Subtitle2>
        <div style={{ display: "flex", gap: 16, flexWrap: "wrap" }}>
          <Field label="Reason for a revocation or renewal">
            <Input value={revokeReason} onChange={(_, d) => setRevokeReason(d.value)} />
          </Field>
          <Field label="Renewal: new evidence link">
            <Input type="url" value={renewEvidence} onChange={(_, d) => setRenewEvidence(d.value)} />
          </Field>
          <Field label="Renewal: days from now">
            <Input type="number" min={1} value={renewDays} onChange={(_, d) => setRenewDays(d.value)} />
          </Field>
        </div>
        <ErrorBar error={revoke.error ?? renew.error} />
        {renew.data ? (
          <Notice>
            Renewal requested: <Link to={`/approvals/${renew.data.renewals.at(-1)?.approvalId ?? renew.data.approvalId}`}>its approval</Link> decides it.
          </Notice>
        ) : null}
        {list.isPending ? <Loading label="Loading exemptions" /> : null}
        <ErrorBar error={list.error} onRetry={() => void list.refetch()} />
        {list.data ? (
          <DataTable
            label="Exemptions"
            empty="No exemption."
            rows={list.data.items}
            rowKey={(e) => e.id}
            columns={[
              { key: "control", label: "Control" },
              { key: "scope", label: "Scope", render: (e) => (e.scope.level === "tenant" ? "tenant" : `${e.scope.level} ${e.scope.projectId ?? ""}`) },
              { key: "status", label: "Status", render: (e) => <Badge appearance="tint" data-testid={`exemption-status-${e.id}`}>{e.status}</Badge> },
              {
                key: "gateway",
                label: "Gateway",
                // A key exemption in force says whether the gateway configuration applies it, and why not.
                render: (e) =>
                  e.gateway === undefined ? null : e.gateway.applied ? (
                    <span data-testid={`exemption-gateway-${e.id}`}>applied</span>
                  ) : (
                    <span data-testid={`exemption-gateway-${e.id}`}>
                      <Badge appearance="tint" color="danger">
                        not applied
                      </Badge>{" "}
                      {e.gateway.why ?? ""}
                    </span>
                  ),
              },
              { key: "approval", label: "Approval", render: (e) => <Link to={`/approvals/${e.approvalId}`}>open</Link> },
              { key: "expiresAt", label: "Expires", render: (e) => when(e.expiresAt) },
              {
                key: "revoke",
                label: "",
                render: (e) =>
                  e.status === "active" || e.status === "expiring" ? (
                    <>
                      <Button size="small" disabled={!renewEvidence} onClick={() => renew.mutate({ id: e.id, etag: e.etag })} aria-label={`Renew ${e.control} exemption`}>
                        Renew
                      </Button>
                      <Button size="small" onClick={() => revoke.mutate({ id: e.id, etag: e.etag })} aria-label={`Revoke ${e.control} exemption`}>
                        Revoke
                      </Button>
                    </>
                  ) : null,
              },
            ]}
          />
        ) : null}
        <LoadMore list={list} label="Load more exemptions" />
      </Section>
      {review.data ? (
        <Section label="Portfolio">
          <Subtitle2 as="h2">Portfolio</Subtitle2>
          <p>
            {review.data.open} open of {review.data.total}; by age: {Object.entries(review.data.ageing.buckets).map(([k, v]) => `${k}: ${v}`).join(", ")}
          </p>
        </Section>
      ) : null}
    </>
  );
}
