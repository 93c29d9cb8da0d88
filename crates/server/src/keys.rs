//! API keys and tenants. A key admits a client and names its tenant; rooms are per tenant, so
//! two customers using the same call ID never meet. Keys are compared in constant time on their
//! SHA-256 digests, so neither a key's content nor its length leaks through timing.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The development key `--dev` enables. Documented, so never use `--dev` on a reachable server.
pub const DEV_API_KEY: &str = "between-dev-key";

/// Index of a tenant in [`ApiKeys`]; stable for the server's lifetime.
pub type TenantId = u32;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the API keys file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the API keys file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error(
        "no API keys configured: pass --api-keys-file FILE, set BETWEEN_API_KEYS=key1,key2, or use --dev for local development"
    )]
    None,
    #[error("an API key is empty ({origin}); remove it or give it a value")]
    Empty { origin: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    key: String,
    /// Keys with the same tenant share call IDs (e.g. an old and a new key during rotation).
    tenant: Option<String>,
}

struct Entry {
    digest: [u8; 32],
    tenant: TenantId,
}

/// The configured keys.
#[derive(Default)]
pub struct ApiKeys {
    entries: Vec<Entry>,
    tenants: Vec<String>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.entries.len())
            .field("tenants", &self.tenants)
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Adds a key for a tenant (created on first use); `None` gives the key a tenant of its own.
    pub fn add(&mut self, key: &str, tenant: Option<&str>) -> Result<(), KeysError> {
        if key.trim().is_empty() {
            return Err(KeysError::Empty {
                origin: tenant.unwrap_or("unnamed").to_string(),
            });
        }
        let name = match tenant {
            Some(t) => t.to_string(),
            None => format!("key-{}", self.entries.len() + 1),
        };
        let tenant = match self.tenants.iter().position(|t| *t == name) {
            Some(i) => i,
            None => {
                self.tenants.push(name);
                self.tenants.len() - 1
            }
        };
        self.entries.push(Entry {
            digest: digest(key),
            tenant: u32::try_from(tenant).unwrap_or(u32::MAX),
        });
        Ok(())
    }

    /// Keys from `BETWEEN_API_KEYS`-style text: comma-separated, blanks around keys ignored.
    pub fn add_comma_separated(&mut self, list: &str) -> Result<(), KeysError> {
        for key in list.split(',').map(str::trim) {
            if key.is_empty() {
                return Err(KeysError::Empty {
                    origin: "BETWEEN_API_KEYS".into(),
                });
            }
            self.add(key, None)?;
        }
        Ok(())
    }

    /// Keys from a TOML file: `[[keys]]` tables with `key` and an optional `tenant`.
    pub fn add_file(&mut self, path: &Path) -> Result<(), KeysError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: KeysFile = toml::from_str(&text).map_err(|e| KeysError::Parse {
            path: shown.clone(),
            message: e.message().to_string(),
        })?;
        if file.keys.is_empty() {
            return Err(KeysError::Parse {
                path: shown,
                message: "it lists no [[keys]]".into(),
            });
        }
        for entry in &file.keys {
            self.add(&entry.key, entry.tenant.as_deref())?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The tenant a key belongs to. Every configured key is compared, whatever matches.
    pub fn verify(&self, key: &str) -> Option<TenantId> {
        let presented = digest(key);
        // Tenant + 1, so 0 means "no match" without a branch on the comparison.
        let mut found = 0u32;
        for entry in &self.entries {
            let equal = entry.digest.ct_eq(&presented);
            found = u32::conditional_select(&found, &(entry.tenant.saturating_add(1)), equal);
        }
        found.checked_sub(1)
    }

    pub fn tenant_name(&self, tenant: TenantId) -> &str {
        self.tenants
            .get(tenant as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_finds_the_tenant() {
        let mut keys = ApiKeys::default();
        keys.add("alpha-key", Some("acme")).expect("add");
        keys.add("beta-key", None).expect("add");
        keys.add("alpha-rotated", Some("acme")).expect("add");
        assert_eq!(keys.verify("alpha-key"), Some(0));
        assert_eq!(keys.verify("alpha-rotated"), Some(0));
        assert_eq!(keys.verify("beta-key"), Some(1));
        assert_eq!(keys.verify("alpha-ke"), None);
        assert_eq!(keys.verify(""), None);
        assert_eq!(keys.tenant_name(0), "acme");
    }

    #[test]
    fn comma_separated_keys_get_their_own_tenants() {
        let mut keys = ApiKeys::default();
        keys.add_comma_separated(" k1 ,k2").expect("add");
        assert_eq!(keys.verify("k1"), Some(0));
        assert_eq!(keys.verify("k2"), Some(1));
        assert!(keys.add_comma_separated("k3,,k4").is_err());
    }

    #[test]
    fn keys_file_parses_and_rejects_mistakes() {
        let dir = std::env::temp_dir().join(format!("between-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "[[keys]]\nkey = \"one\"\ntenant = \"t\"\n[[keys]]\nkey = \"two\"\n",
        )
        .expect("write");
        let mut keys = ApiKeys::default();
        keys.add_file(&good).expect("parse");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.verify("two"), Some(1));

        for (name, text) in [
            ("empty.toml", ""),
            ("typo.toml", "[[keys]]\nkee = \"x\"\n"),
            ("blank.toml", "[[keys]]\nkey = \" \"\n"),
            ("broken.toml", "[[keys]\n"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            assert!(ApiKeys::default().add_file(&path).is_err(), "{name}");
        }
        assert!(matches!(
            ApiKeys::default().add_file(&dir.join("missing.toml")),
            Err(KeysError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
