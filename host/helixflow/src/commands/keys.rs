//! A tenant's credentials: `keys` (API keys) and `access-keys` (AWS SigV4 key pairs).

use crate::client::Client;
use crate::routes;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Create a key; the key is printed once and never again.
    Create {
        #[arg(long, short)]
        tenant: String,
        /// admin, developer, invoker or viewer.
        #[arg(long, short)]
        role: String,
        #[arg(long, short, default_value = "cli")]
        name: String,
        /// Expire after this many seconds.
        #[arg(long)]
        expires_in_secs: Option<u64>,
    },
    List {
        #[arg(long, short)]
        tenant: String,
    },
    Revoke {
        #[arg(long, short)]
        tenant: String,
        /// The key's prefix (the 12 hex characters after `hfk_`).
        prefix: String,
    },
}

#[derive(Subcommand)]
pub enum AccessKeysCmd {
    /// Create a key pair; prints `AWS_ACCESS_KEY_ID=...` and `AWS_SECRET_ACCESS_KEY=...` once.
    Create {
        #[arg(long, short)]
        tenant: String,
        /// admin, developer, invoker or viewer.
        #[arg(long, short, default_value = "invoker")]
        role: String,
        #[arg(long, short, default_value = "cli")]
        name: String,
        #[arg(long)]
        expires_in_secs: Option<u64>,
    },
    List {
        #[arg(long, short)]
        tenant: String,
    },
    Revoke {
        #[arg(long, short)]
        tenant: String,
        access_key_id: String,
    },
}

/// The body of a key creation request.
fn key_body(name: &str, role: &str, expires_in_secs: Option<u64>) -> serde_json::Value {
    let mut body = serde_json::json!({"name": name, "role": role});
    if let Some(s) = expires_in_secs {
        body["expires_in_secs"] = s.into();
    }
    body
}

/// One line per key: id, role, name, created, and whether it is revoked.
fn print_keys(list: &serde_json::Value, id_field: &str) {
    for k in list.as_array().into_iter().flatten() {
        println!(
            "{}\t{}\t{}\t{}{}",
            k[id_field].as_str().unwrap_or_default(),
            k["role"].as_str().unwrap_or_default(),
            k["name"].as_str().unwrap_or_default(),
            k["created_at"].as_str().unwrap_or_default(),
            if k["revoked"] == true {
                "\trevoked"
            } else {
                ""
            }
        );
    }
}

pub async fn keys(c: &Client, cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Create {
            tenant,
            role,
            name,
            expires_in_secs,
        } => {
            let v = c
                .json(
                    http::Method::POST,
                    &routes::keys(&tenant),
                    Some(key_body(&name, &role, expires_in_secs)),
                )
                .await?;
            eprintln!(
                "created {} key {} for tenant {tenant} (shown once; store it now)",
                v["role"].as_str().unwrap_or_default(),
                v["prefix"].as_str().unwrap_or_default()
            );
            println!("{}", v["key"].as_str().unwrap_or_default());
            Ok(())
        }
        KeysCmd::List { tenant } => {
            let v = c
                .json(http::Method::GET, &routes::keys(&tenant), None)
                .await?;
            print_keys(&v["keys"], "prefix");
            Ok(())
        }
        KeysCmd::Revoke { tenant, prefix } => {
            c.json(http::Method::DELETE, &routes::key(&tenant, &prefix), None)
                .await?;
            println!("revoked {prefix}");
            Ok(())
        }
    }
}

pub async fn access_keys(c: &Client, cmd: AccessKeysCmd) -> Result<()> {
    match cmd {
        AccessKeysCmd::Create {
            tenant,
            role,
            name,
            expires_in_secs,
        } => {
            let v = c
                .json(
                    http::Method::POST,
                    &routes::access_keys(&tenant),
                    Some(key_body(&name, &role, expires_in_secs)),
                )
                .await?;
            eprintln!(
                "created {} access key for tenant {tenant} (account id {}); the secret is shown once",
                v["role"].as_str().unwrap_or_default(),
                v["account_id"].as_str().unwrap_or_default()
            );
            println!(
                "AWS_ACCESS_KEY_ID={}",
                v["access_key_id"].as_str().unwrap_or_default()
            );
            println!(
                "AWS_SECRET_ACCESS_KEY={}",
                v["secret_access_key"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        AccessKeysCmd::List { tenant } => {
            let v = c
                .json(http::Method::GET, &routes::access_keys(&tenant), None)
                .await?;
            print_keys(&v["access_keys"], "access_key_id");
            Ok(())
        }
        AccessKeysCmd::Revoke {
            tenant,
            access_key_id,
        } => {
            c.json(
                http::Method::DELETE,
                &routes::access_key(&tenant, &access_key_id),
                None,
            )
            .await?;
            println!("revoked {access_key_id}");
            Ok(())
        }
    }
}
