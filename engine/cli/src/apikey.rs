//! `switchyard apikey create|list|revoke`: the per-tenant API keys `serve`'s tenant endpoints
//! take (`Authorization: Bearer <key>`). A key is printed once, when it is created; the store
//! keeps only its SHA-256.

use std::io::Write;
use std::path::PathBuf;

/// Arguments of `switchyard apikey`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Sub,
    /// The engine's store.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = ".switchyard/switchyard.sqlite"
    )]
    pub store: PathBuf,
}

/// Subcommands of `switchyard apikey`.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Create a key for a tenant; prints the key (once) on stdout, its id on stderr.
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// A name for the key (who or what uses it).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List keys (ids, tenants, labels, dates; never the keys).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by id: it stops working at once.
    Revoke {
        /// The key's id (`apikey list`).
        id: String,
    },
}

pub(super) fn run(a: Args) -> u8 {
    let store = match switchyard::store::Store::open(&a.store) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    match a.command {
        Sub::Create { tenant, label } => {
            if tenant.trim().is_empty() {
                eprintln!("error: --tenant must not be empty");
                return super::EXIT_USAGE;
            }
            match store.api_key_create(&tenant, &label) {
                Ok((id, key)) => {
                    eprintln!("created key {id} for tenant `{tenant}`; it is shown once:");
                    let _ = writeln!(std::io::stdout(), "{key}");
                    super::EXIT_OK
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    super::EXIT_USAGE
                }
            }
        }
        Sub::List { tenant } => match store.api_keys(tenant.as_deref()) {
            Ok(keys) => {
                let mut out = std::io::stdout().lock();
                for k in keys {
                    if let Ok(line) = serde_json::to_string(&k)
                        && writeln!(out, "{line}").is_err()
                    {
                        break;
                    }
                }
                super::EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                super::EXIT_USAGE
            }
        },
        Sub::Revoke { id } => match store.api_key_revoke(&id) {
            Ok(true) => {
                eprintln!("revoked key {id}");
                super::EXIT_OK
            }
            Ok(false) => {
                eprintln!("error: no live key with id `{id}`");
                super::EXIT_REJECTED
            }
            Err(e) => {
                eprintln!("error: {e}");
                super::EXIT_USAGE
            }
        },
    }
}
