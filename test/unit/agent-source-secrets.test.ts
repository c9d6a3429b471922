import { describe, expect, it } from "vitest";
import { reportableMessage, secretsOf, SourceError } from "../../src/pillars/agents/sources/source.js";

/** A cloud's error quoting the connection's own secret, in a form no credential pattern knows, is not kept. */
describe("agent sources: messages cleaned of the connection's secret values", () => {
  const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  const target = { cloud: "bedrock" as const, accountId: "123456789012", credentials: { accessKeyId: "AKIAEXAMPLE0001", secretAccessKey: SECRET } };

  it("a secret quoted plainly, or URL-encoded, is redacted", () => {
    const message = new SourceError("refused", `The security token included in the request is invalid (key ${SECRET}, ${encodeURIComponent(SECRET)})`).message;
    expect(message).toContain(SECRET); // the pattern-only cleaning keeps it
    const cleaned = reportableMessage(message, secretsOf(target));
    expect(cleaned).not.toContain(SECRET);
    expect(cleaned).not.toContain(encodeURIComponent(SECRET));
    expect(cleaned).toContain("The security token included in the request is invalid");
  });

  it("a secret cut in two by an earlier shortening is redacted too", () => {
    const message = new SourceError("refused", `${"x".repeat(480)} ${SECRET}`).message;
    expect(reportableMessage(message, secretsOf(target))).not.toContain(SECRET.slice(0, 12));
  });

  it("a service account key's private key, escaped or not, is redacted", () => {
    const pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
    const json = JSON.stringify({ type: "service_account", project_id: "proj-1", private_key_id: "abcdef0123456789", private_key: pem, client_email: "sa@proj-1.iam.gserviceaccount.com" });
    const secrets = secretsOf({ cloud: "vertex", projectId: "proj-1", credentials: { kind: "serviceAccountKey", json } });
    const cleaned = reportableMessage("invalid_grant: key MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7 (id abcdef0123456789) for sa@proj-1.iam.gserviceaccount.com", secrets);
    expect(cleaned).not.toContain("MIIEvQIBADANBgkq");
    expect(cleaned).not.toContain("abcdef0123456789");
    expect(cleaned).toContain("sa@proj-1.iam.gserviceaccount.com");
    // What is not secret in the document stays readable: its public members, the PEM's armour.
    const pretty = JSON.stringify(JSON.parse(json), null, 2);
    const plain = secretsOf({ cloud: "vertex", projectId: "proj-1", credentials: { kind: "serviceAccountKey", json: pretty } });
    const quoted = reportableMessage('bad key file: "type": "service_account", -----BEGIN PRIVATE KEY-----', plain);
    expect(quoted).toBe('bad key file: "type": "service_account", -----BEGIN PRIVATE KEY-----');
  });
});
