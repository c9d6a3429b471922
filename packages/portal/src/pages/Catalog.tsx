import { Badge, Field, Input, Select, Subtitle2 } from "@fluentui/react-components";
import { useState } from "react";
import { Link } from "react-router";
import { useClient } from "../app/api.js";
import { LoadMore, usePaged } from "../app/paging.js";
import { DataTable, ErrorBar, Loading, PageHeader, Section } from "../app/ui.js";

/** Build: the models, tools and agents the developer's projects may use, with the way to credentials. */
export default function Catalog() {
  const client = useClient();
  const [q, setQ] = useState("");
  const [kind, setKind] = useState<"" | "models" | "tools" | "agents">("");
  const catalog = usePaged(["catalog", q, kind], (token) =>
    client.catalog.search({ ...(q.trim() ? { q: q.trim() } : {}), ...(kind ? { kind } : {}), maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }),
  );
  return (
    <>
      <PageHeader title="Catalog">
        <Field label="Search">
          <Input value={q} onChange={(_, d) => setQ(d.value)} type="search" />
        </Field>
        <Field label="Kind">
          <Select value={kind} onChange={(_, d) => setKind(d.value as typeof kind)}>
            <option value="">Everything</option>
            <option value="models">Models</option>
            <option value="tools">Tools</option>
            <option value="agents">Agents</option>
          </Select>
        </Field>
      </PageHeader>
      <Section label="Results">
        <Subtitle2 as="h2">What your projects may use</Subtitle2>
        {catalog.isPending ? <Loading label="Searching" /> : null}
        <ErrorBar error={catalog.error} onRetry={() => void catalog.refetch()} />
        {catalog.data ? (
          <DataTable
            label="Catalog"
            empty="Nothing matches."
            rows={catalog.data.items}
            rowKey={(e) => `${e.kind}/${e.projectId}/${e.id}/${e.name}`}
            columns={[
              { key: "kind", label: "Kind" },
              { key: "name", label: "Name" },
              { key: "description", label: "Description" },
              { key: "status", label: "Status", render: (e) => <Badge appearance="tint">{e.status}</Badge> },
              { key: "credentials", label: "", render: (e) => <Link to={`/projects/${e.projectId}/keys`}>Get credentials</Link> },
            ]}
          />
        ) : null}
        <LoadMore list={catalog} label="Load more results" />
      </Section>
    </>
  );
}
