# Policy `strom`: what the strom service may do in OpenBao.
# STROM keeps its secrets in the KV v2 engine mounted at secret/ (dev mode mounts it there), under secret/strom/*.
# KV v2 splits each logical path into data/ (the values) and metadata/ (versions, listing).

# Read and write the secrets themselves (e.g. secret/strom/telegram, secret/strom/database).
path "secret/data/strom/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# List secret names and read their version metadata; no destroying of versions.
path "secret/metadata/strom/*" {
  capabilities = ["list", "read"]
}

# Let a token holder look up its own token (health and diagnostics).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
