#!/bin/sh
# azd preprovision hook: refuses a region without Flex Consumption before anything is created.
# infra/main.bicep checks AZURE_LOCATION against its allowedLocations (API Management Standard v2 regions);
# Flex Consumption publishes no static region list, so this asks Azure, as Microsoft's Flex Consumption
# how-to says ("View currently supported regions"). Without the Azure CLI it only warns.
set -eu
location="${AZURE_LOCATION:-}"
if [ -z "$location" ]; then
  echo "preprovision: AZURE_LOCATION is not set; azd asks for it" >&2
  exit 0
fi
if ! command -v az >/dev/null 2>&1; then
  echo "preprovision: Azure CLI not found; cannot check that Flex Consumption is offered in '$location'" >&2
  exit 0
fi
if ! regions="$(az functionapp list-flexconsumption-locations --query '[].name' -o tsv 2>/dev/null)"; then
  echo "preprovision: could not list Flex Consumption regions (is 'az login' done?); not checked" >&2
  exit 0
fi
wanted="$(printf '%s' "$location" | tr '[:upper:]' '[:lower:]' | tr -d ' ')"
if printf '%s\n' "$regions" | tr '[:upper:]' '[:lower:]' | tr -d ' ' | grep -qx "$wanted"; then
  echo "preprovision: Flex Consumption is offered in '$location'"
  exit 0
fi
echo "preprovision: Flex Consumption is not offered in '$location'. Regions that have it:" >&2
printf '%s\n' "$regions" >&2
exit 1
