import { Button, Card, Checkbox, Field, Input, Text, Title2, makeStyles, tokens } from "@fluentui/react-components";
import { useState } from "react";
import { useSession } from "../app/session.js";
import { ErrorBar } from "../app/ui.js";

const ROLES = ["TenantAdmin", "ProjectAdmin", "Developer", "Auditor", "Reader"] as const;

const useStyles = makeStyles({
  card: { maxWidth: "480px", margin: "10vh auto", padding: tokens.spacingHorizontalXXL, display: "flex", flexDirection: "column", gap: tokens.spacingVerticalM },
  roles: { display: "flex", flexWrap: "wrap", gap: tokens.spacingHorizontalS },
});

/** Sign-in: Entra ID in Azure; the local dev issuer (any tenant, user and roles) only when the app runs in dev mode. */
export function SignIn() {
  const s = useStyles();
  const { auth, signInDev, signInEntra } = useSession();
  const [tenant, setTenant] = useState("contoso");
  const [user, setUser] = useState("");
  const [roles, setRoles] = useState<string[]>(["TenantAdmin"]);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  if (auth.mode === "entra") {
    return (
      <Card className={s.card}>
        <Title2 as="h1">Sign in to aigov</Title2>
        <Button appearance="primary" onClick={() => void signInEntra()}>
          Sign in with Microsoft Entra ID
        </Button>
      </Card>
    );
  }
  return (
    <Card className={s.card}>
      <Title2 as="h1">Sign in (local dev issuer)</Title2>
      <Text>This local host signs tokens for any tenant, user and roles. It exists only when the app runs in dev mode.</Text>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          signInDev({ tenant, user, roles }).then(
            () => setBusy(false),
            (err: unknown) => {
              setError(err);
              setBusy(false);
            },
          );
        }}
      >
        <Field label="Tenant" required>
          <Input value={tenant} onChange={(_, d) => setTenant(d.value)} />
        </Field>
        <Field label="User" required>
          <Input value={user} onChange={(_, d) => setUser(d.value)} />
        </Field>
        <fieldset className={s.roles}>
          <legend>Tenant roles</legend>
          {ROLES.map((r) => (
            <Checkbox key={r} label={r} checked={roles.includes(r)} onChange={(_, d) => setRoles((cur) => (d.checked ? [...cur, r] : cur.filter((x) => x !== r)))} />
          ))}
        </fieldset>
        <ErrorBar error={error} />
        <Button appearance="primary" type="submit" disabled={busy || !user || !tenant}>
          Sign in
        </Button>
      </form>
    </Card>
  );
}
