//! `helixflow`: the HelixFlow binary. `serve` runs a node; the other commands are a
//! client of a node's control and data planes. This crate wires the library crates
//! together and holds no product logic of its own.
//!
//! `main.rs` holds the command line's top level and the exit codes (0 ok, 1 an error
//! or an API error, 3 the node cannot be reached); each group of client commands is a
//! module of `commands/`, its paths come from `routes`, its requests go through
//! `client` (HTTP plumbing shared with the JWKS fetch: `http_client`).

mod client;
mod commands;
mod http_client;
mod jwks;
mod lambda;
mod package;
mod routes;
mod serve;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{
    admin, dev, doctor, events, functions, keys, models, openapi, scaffold, tenants, usage,
};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "helixflow",
    version,
    about = "HelixFlow: tenants' WebAssembly functions at the edge"
)]
struct Cli {
    /// The node to talk to (client commands).
    #[arg(
        long,
        global = true,
        env = "HELIXFLOW_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// API key, JWT or the platform admin key (client commands).
    #[arg(long, global = true, env = "HELIXFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (embedded state by default).
    Serve(serve::ServeArgs),
    /// Shared state: `state init` creates the DynamoDB table a config names.
    State {
        #[command(subcommand)]
        cmd: admin::StateCmd,
    },
    /// Node configuration files.
    Config {
        #[command(subcommand)]
        cmd: admin::ConfigCmd,
    },
    /// Tenants.
    Tenants {
        #[command(subcommand)]
        cmd: tenants::TenantsCmd,
    },
    /// Upload a component as a new immutable version of a function.
    Deploy(functions::DeployArgs),
    /// Invoke a function's event handler with a payload.
    Invoke(functions::InvokeArgs),
    /// Functions.
    Functions {
        #[command(subcommand)]
        cmd: functions::FunctionsCmd,
    },
    /// Aliases.
    Alias {
        #[command(subcommand)]
        cmd: functions::AliasCmd,
    },
    /// Delete artifacts no version references (older than the grace period) and prune
    /// the node's compile cache.
    Gc(admin::GcArgs),
    /// API keys of a tenant: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// AWS SigV4 access key pairs of a tenant, for the Lambda-compatible Invoke API
    /// (boto3, the AWS CLI): create (secret shown once), list, revoke.
    #[command(subcommand, name = "access-keys")]
    AccessKeys(keys::AccessKeysCmd),
    /// Event (asynchronous) invocations: pending and failed ones, and re-driving failures.
    #[command(subcommand)]
    Events(events::EventsCmd),
    /// Run as an AWS Lambda custom runtime (`bootstrap`): every Lambda event goes to one
    /// WebAssembly component (HTTP events to its wasi:http handler, others to its event
    /// handler). Reads `AWS_LAMBDA_RUNTIME_API` and friends from the environment.
    Lambda(crate::lambda::LambdaArgs),
    /// Write the zip to upload to AWS Lambda (`--lambda`, runtime provided.al2023):
    /// `bootstrap` (this binary, which runs `lambda` when started under that name),
    /// `function.wasm`, and optionally `models/` and ONNX Runtime.
    Package(package::PackageArgs),
    /// A tenant's audit log (control-plane actions and refused requests), newest first.
    Audit(admin::AuditArgs),
    /// What a tenant used: requests, errors, latency, GB-seconds, tokens, per minute,
    /// hour or day, grouped by function, trigger, location, key or model.
    Usage(usage::UsageArgs),
    /// A tenant's budget and its month's spend; `--set JSON` sets it (monthly spend caps
    /// and OpenAI rpm/tpm, per tenant and per caller), `--remove` removes it.
    Budget(usage::BudgetArgs),
    /// ONNX models: push (upload, with a progress bar), list, get, delete.
    #[command(subcommand)]
    Models(models::ModelsCmd),
    /// Recent invocation logs (captured stdout/stderr) of a function.
    Logs(functions::LogsArgs),
    /// Write a new function project from a template built into this binary (rust-http,
    /// rust-event, rust-embeddings, python-http, python-event, js-http, js-event).
    New(scaffold::NewArgs),
    /// Build the function project in --dir and print the component's path. The language
    /// is detected: Cargo.toml (cargo, wasm32-wasip2), pyproject.toml with
    /// [tool.helixflow] (componentize-py), package.json with "helixflow" (npm run build).
    Build(dev::BuildArgs),
    /// Check the local setup, one line each: cargo, rustc, the wasm32-wasip2 target,
    /// componentize-py and node/npm (optional), ONNX Runtime, the node at --url and the
    /// credentials (--token).
    Doctor(doctor::DoctorArgs),
    /// The local loop: start a node at --url if none answers, build, deploy (alias
    /// live), then rebuild and redeploy on every change and print the function's logs.
    Dev(dev::DevArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (what `GET /api/v1/openapi.json`
    /// serves), e.g. `helixflow openapi > host/api/openapi.json`.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(args());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = match e.downcast_ref::<client::ClientError>() {
                Some(client::ClientError::Connect { .. }) => 3,
                Some(client::ClientError::Api { .. }) => 1,
                _ => 1,
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// The command line. Started as `bootstrap` (the name a Lambda deployment package
/// gives this binary, see `package.rs`), it is `helixflow lambda`: Lambda runs
/// `bootstrap` with no arguments.
fn args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = std::env::args_os().collect();
    let program = args.first().map(std::path::Path::new);
    if program.and_then(|p| p.file_name()) == Some(std::ffi::OsStr::new("bootstrap")) {
        args.insert(1, "lambda".into());
    }
    args
}

async fn run(cli: Cli) -> Result<()> {
    let c = client::Client::new(&cli.url, cli.token.clone());
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Lambda(args) => lambda::run(args).await,
        Command::Package(args) => package::run(args).await,
        Command::State { cmd } => admin::state(cmd).await,
        Command::Config { cmd } => admin::config(cmd),
        Command::Tenants { cmd } => tenants::run(&c, cmd).await,
        Command::Deploy(args) => functions::deploy(&c, args).await,
        Command::Models(cmd) => models::run(&c, cmd).await,
        Command::Keys(cmd) => keys::keys(&c, cmd).await,
        Command::AccessKeys(cmd) => keys::access_keys(&c, cmd).await,
        Command::Events(cmd) => events::run(&c, cmd).await,
        Command::Audit(args) => admin::audit(&c, args).await,
        Command::Usage(args) => usage::run(&c, args).await,
        Command::Budget(args) => usage::budget(&c, args).await,
        Command::Invoke(args) => functions::invoke(&c, args).await,
        Command::Functions { cmd } => functions::functions(&c, cmd).await,
        Command::Alias { cmd } => functions::alias(&c, cmd).await,
        Command::Gc(args) => admin::gc(&c, args).await,
        Command::Logs(args) => functions::logs(&c, args).await,
        Command::Openapi => openapi::print(),
        Command::New(args) => scaffold::new(args),
        Command::Build(args) => dev::build(args).await,
        Command::Doctor(_) => doctor::doctor(&cli.url, cli.token.clone()).await,
        Command::Dev(args) => dev::dev(&cli.url, cli.token.clone(), args).await,
    }
}
