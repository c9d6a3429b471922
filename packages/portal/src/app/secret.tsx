import { Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Input, Field, MessageBar, MessageBarBody } from "@fluentui/react-components";
import { useState } from "react";

/**
 * A virtual key's plaintext, shown once. It lives only in the state of the screen that received it: never
 * in the query cache (keys are created outside react-query), browser storage or the console, and it is
 * dropped when the dialog closes or the screen unmounts.
 */
export function SecretDialog({ secret, onClose }: { secret: { name: string; key: string } | undefined; onClose: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <Dialog open={!!secret} modalType="alert" onOpenChange={(_, d) => (d.open ? undefined : (setCopied(false), onClose()))}>
      <DialogSurface aria-describedby="secret-warning">
        <DialogBody>
          <DialogTitle>Key {secret?.name}</DialogTitle>
          <DialogContent>
            <MessageBar intent="warning" id="secret-warning">
              <MessageBarBody>Copy it now: it is shown this once and cannot be read again.</MessageBarBody>
            </MessageBar>
            <Field label="Key">
              <Input readOnly value={secret?.key ?? ""} data-testid="secret-value" />
            </Field>
          </DialogContent>
          <DialogActions>
            <Button
              onClick={() =>
                void navigator.clipboard?.writeText(secret?.key ?? "").then(
                  () => setCopied(true),
                  () => setCopied(false),
                )
              }
            >
              {copied ? "Copied" : "Copy"}
            </Button>
            <Button appearance="primary" onClick={() => (setCopied(false), onClose())}>
              I have stored it
            </Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}
