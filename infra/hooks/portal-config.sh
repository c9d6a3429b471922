#!/bin/sh
# azd prepackage hook of the portal service (azure.yaml): writes dist/portal-site/portal/config.json, what the
# portal reads at start (packages/portal/src/app/config.ts), from the provisioned outputs azd puts in the
# environment: Entra sign-in (MSAL, authorization code with PKCE) with the client registration on the API's
# scope, the API's origin (the function app, CORS-allowed for the portal) and the APIM gateway (playgrounds).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
site="$here/../../dist/portal-site/portal"
: "${AUTH_CLIENT_ID:?AUTH_CLIENT_ID is empty: the portal needs the client app registration (createAppRegistration, docs/deploy.md)}"
: "${AUTH_API_SCOPE:?AUTH_API_SCOPE is empty: the portal needs the API registration's scope}"
: "${API_ORIGIN:?API_ORIGIN is empty: provision first (azd provision)}"
mkdir -p "$site"
node -e '
const [file, clientId, scope, api, gateway] = process.argv.slice(1);
const config = {
  // Multi-tenant: any organisation'"'"'s account; the API decides which tenants it accepts (AUTH_ALLOWED_TENANTS).
  auth: { mode: "entra", clientId, authority: "https://login.microsoftonline.com/organizations", scopes: [scope] },
  apiUrl: api,
  ...(gateway ? { gatewayUrl: gateway } : {}),
};
require("fs").writeFileSync(file, JSON.stringify(config, null, 2));
' "$site/config.json" "$AUTH_CLIENT_ID" "$AUTH_API_SCOPE" "$API_ORIGIN" "${APIM_GATEWAY_URL:-}"
echo "portal config: $site/config.json"
