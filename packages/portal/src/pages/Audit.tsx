import { Button, Field, Input, Subtitle2 } from "@fluentui/react-components";
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { useClient } from "../app/api.js";
import { LoadMore, usePaged } from "../app/paging.js";
import { DataTable, ErrorBar, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";

/** The audit log, filtered by resource or actor, and the hash chain verified on demand. */
export default function Audit() {
  const client = useClient();
  const [resource, setResource] = useState("");
  const [actor, setActor] = useState("");
  const log = usePaged(["audit", resource, actor], (token) => client.audit.list({ maxPageSize: 100, ...(resource ? { resource } : {}), ...(actor ? { actor } : {}), ...(token ? { continuationToken: token } : {}) }));
  const verify = useMutation({ mutationFn: () => client.audit.verify() });
  return (
    <>
      <PageHeader title="Audit">
        <Button appearance="primary" onClick={() => verify.mutate()} disabled={verify.isPending}>
          Verify the chain
        </Button>
      </PageHeader>
      <ErrorBar error={verify.error} />
      {verify.data ? (
        <Notice intent={verify.data.ok ? "success" : "warning"}>
          <span data-testid="audit-verification">
            {verify.data.ok ? "Chain intact" : "Chain broken"}: {verify.data.recordsChecked} records in {verify.data.scopes.length} scopes
            {verify.data.firstBreak ? `; first break in ${verify.data.firstBreak.scope}` : ""}
          </span>
        </Notice>
      ) : null}
      <Section label="Records">
        <Subtitle2 as="h2">Records</Subtitle2>
        <div style={{ display: "flex", gap: 16 }}>
          <Field label="Resource">
            <Input value={resource} onChange={(_, d) => setResource(d.value)} placeholder="/projects/prj_…" />
          </Field>
          <Field label="Actor">
            <Input value={actor} onChange={(_, d) => setActor(d.value)} />
          </Field>
        </div>
        {log.isPending ? <Loading label="Loading audit records" /> : null}
        <ErrorBar error={log.error} onRetry={() => void log.refetch()} />
        {log.data ? (
          <DataTable
            label="Audit records"
            empty="No record matches."
            rows={log.data.items}
            rowKey={(r) => r.id}
            columns={[
              { key: "at", label: "When", render: (r) => when(r.at) },
              { key: "actor", label: "Actor", render: (r) => r.actor },
              { key: "action", label: "Action" },
              { key: "resource", label: "Resource" },
            ]}
          />
        ) : null}
        <LoadMore list={log} label="Load more audit records" />
      </Section>
    </>
  );
}
