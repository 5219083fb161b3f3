//! The local loop for Rust functions: `build` and `dev` (`new` is in
//! [`super::scaffold`], `doctor` in [`super::doctor`]).
//!
//! `build` runs `cargo build --release --target wasm32-wasip2` in a project and prints
//! the component's path (from `cargo metadata`). `dev` starts a node when none
//! answers (this binary's `serve`, data under the project's `target/helixflow-dev/`),
//! builds, deploys with `?alias=live`, then polls the sources every 250 ms and
//! rebuilds and redeploys on change, printing the function's new log records.

use crate::client::{Client, ClientError};
use crate::routes;
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

pub(crate) const TARGET: &str = "wasm32-wasip2";
pub(crate) const ADD_TARGET: &str = "rustup target add wasm32-wasip2";

// `helixflow build`.
#[derive(Args)]
pub struct BuildArgs {
    /// The project's directory.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

// `helixflow dev` (the node is the global --url).
#[derive(Args)]
pub struct DevArgs {
    /// The project's directory.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The tenant to deploy to (created when missing).
    #[arg(long, short, default_value = "dev")]
    tenant: String,
    /// The function's name (default: the package's name).
    #[arg(long)]
    name: Option<String>,
}

/// A function project: what `cargo metadata` says about it.
struct Project {
    dir: PathBuf,
    package: String,
    /// The component `cargo build --release --target wasm32-wasip2` writes.
    artifact: PathBuf,
}

fn project(dir: &Path) -> Result<Project> {
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "{}: no Cargo.toml, so no function project there (only Rust projects are supported; `helixflow new NAME --template rust-http` makes one)",
            dir.display()
        );
    }
    let out = std::process::Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| anyhow!("cannot run cargo ({e}): install Rust from https://rustup.rs"))?;
    if !out.status.success() {
        bail!("`cargo metadata` failed in {}", dir.display());
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `cargo metadata`")?;
    let pkg = &meta["packages"][0];
    let package = pkg["name"]
        .as_str()
        .ok_or_else(|| anyhow!("{}: no package in Cargo.toml", dir.display()))?;
    let lib = pkg["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k == "cdylib")
        })
        .and_then(|t| t["name"].as_str())
        .ok_or_else(|| {
            anyhow!(
                "{package}: no cdylib library (Cargo.toml needs `[lib] crate-type = [\"cdylib\"]`)"
            )
        })?;
    let target_dir = meta["target_directory"]
        .as_str()
        .ok_or_else(|| anyhow!("`cargo metadata` gave no target_directory"))?;
    Ok(Project {
        dir: dir.to_path_buf(),
        package: package.to_string(),
        artifact: Path::new(target_dir)
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", lib.replace('-', "_"))),
    })
}

/// The output of `cmd args`, or why it could not run.
pub(crate) fn output(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether the wasm32-wasip2 standard library is installed: rustup's list when there is
/// rustup, else the sysroot.
pub(crate) fn target_installed() -> Result<bool, String> {
    match output("rustup", &["target", "list", "--installed"]) {
        Ok(list) => Ok(list.lines().any(|l| l.trim() == TARGET)),
        Err(_) => {
            let sysroot = output("rustc", &["--print", "sysroot"])?;
            Ok(Path::new(&sysroot)
                .join("lib/rustlib")
                .join(TARGET)
                .is_dir())
        }
    }
}

/// Cargo and the target are there, or a one-line fix.
fn check_toolchain() -> Result<()> {
    output("cargo", &["--version"]).map_err(|e| {
        anyhow!("cargo is missing ({e}): install Rust from https://rustup.rs, then `{ADD_TARGET}`")
    })?;
    if !target_installed().unwrap_or(true) {
        bail!("the {TARGET} target is not installed: run `{ADD_TARGET}`");
    }
    Ok(())
}

/// `cargo build --release --target wasm32-wasip2`, its output passed through. Ok(false)
/// when the build failed.
async fn cargo_build(p: &Project) -> Result<bool> {
    let status = tokio::process::Command::new("cargo")
        .args(["build", "--release", "--target", TARGET])
        .current_dir(&p.dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| anyhow!("cannot run cargo ({e}): install Rust from https://rustup.rs"))?;
    Ok(status.success() && p.artifact.is_file())
}

pub async fn build(args: BuildArgs) -> Result<()> {
    check_toolchain()?;
    let p = project(&args.dir)?;
    if !cargo_build(&p).await? {
        bail!(
            "the build of {} failed (the compiler's errors are above)",
            p.package
        );
    }
    println!("{}", p.artifact.display());
    Ok(())
}

/// A node `dev` started: killed (and only it) when `dev` ends.
struct StartedNode {
    child: std::process::Child,
}

impl Drop for StartedNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 24 random bytes, hex: the admin key of a node `dev` starts.
fn random_key() -> String {
    use std::io::Read;
    let mut b = [0u8; 24];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        use std::hash::BuildHasher;
        for (i, c) in b.chunks_mut(8).enumerate() {
            c.copy_from_slice(&std::hash::RandomState::new().hash_one(i).to_le_bytes());
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `host:port` of a loopback `http://` URL: where `dev` may start a node.
fn loopback_listen(url: &str) -> Result<String> {
    let rest = url.strip_prefix("http://").unwrap_or_default();
    let hostport = rest.split('/').next().unwrap_or_default();
    let host = hostport
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(hostport);
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") || !hostport.contains(':') {
        bail!(
            "no node answers at {url}, and dev starts one only at a loopback http://HOST:PORT URL: start one there, or pass e.g. --url http://127.0.0.1:8080"
        );
    }
    Ok(hostport.to_string())
}

/// Start `helixflow serve` (this binary) at `url` with embedded defaults and a fresh
/// admin key, data and log under `target/helixflow-dev/`.
async fn start_node(url: &str, p: &Project) -> Result<(StartedNode, String)> {
    let listen = loopback_listen(url)?;
    let home = p.dir.join("target/helixflow-dev");
    std::fs::create_dir_all(home.join("data"))
        .with_context(|| format!("creating {}", home.display()))?;
    let log_path = home.join("serve.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let key = random_key();
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(home.join("data"))
        .env("HELIXFLOW_ADMIN_KEY", &key)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting helixflow serve")?;
    let mut node = StartedNode { child };
    let probe = Client::new(url, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if probe
            .json(http::Method::GET, "/healthz", None)
            .await
            .is_ok()
        {
            break;
        }
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(status) = node.child.try_wait()? {
            bail!("helixflow serve exited ({status}); its log:\n{}", log());
        }
        if Instant::now() > deadline {
            bail!(
                "helixflow serve did not answer at {url} within 30 s; its log:\n{}",
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "started a dev node at {url} (pid {}, data and log in {})",
        node.child.id(),
        home.display()
    );
    Ok((node, key))
}

/// Modification times of what a build reads: Cargo.toml, build.rs and everything under src/.
fn snapshot(dir: &Path) -> Vec<(PathBuf, SystemTime)> {
    fn walk(p: &Path, out: &mut Vec<(PathBuf, SystemTime)>) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), out);
            }
        } else if let Ok(m) = meta.modified() {
            out.push((p.to_path_buf(), m));
        }
    }
    let mut out = Vec::new();
    for rel in ["Cargo.toml", "build.rs", "src"] {
        walk(&dir.join(rel), &mut out);
    }
    out.sort();
    out
}

/// The function being developed and where it lives.
struct Dev {
    c: Client,
    tenant: String,
    name: String,
    project: Project,
    /// The version alias `live` points at, when a deploy succeeded.
    live: Option<u64>,
    http: bool,
    seen_logs: HashSet<String>,
    /// How the printed curl/invoke lines authenticate: the key of the node dev started,
    /// else `$HELIXFLOW_TOKEN`.
    shown_token: String,
}

impl Dev {
    /// Build and deploy; on a failed build or deploy, say so and keep the last version.
    /// `changed_at`: when the change happened (to report change-to-served).
    async fn build_and_deploy(&mut self, changed_at: Option<SystemTime>) -> Result<()> {
        println!("building {} ...", self.project.package);
        if !cargo_build(&self.project).await? {
            match self.live {
                Some(v) => eprintln!("build failed (errors above): version {v} keeps serving"),
                None => {
                    eprintln!("build failed (errors above): fix it and save; nothing deployed yet")
                }
            }
            return Ok(());
        }
        let path = routes::versions(&self.tenant, &self.name, Some("live"), "helixflow dev");
        let v = match self
            .c
            .upload(&path, &self.project.artifact, "application/wasm", vec![])
            .await
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!("deploy failed: {e:#}");
                return Ok(());
            }
        };
        let version = v["version"]["version"].as_u64().unwrap_or_default();
        self.http = v["version"]["exports"]["http"].as_bool() == Some(true);
        let first = self.live.is_none();
        self.live = Some(version);
        println!(
            "deployed {}/{} version {version}, alias live -> {version}",
            self.tenant, self.name
        );
        if self.http {
            // Served: one request through the alias answers.
            let served = self
                .c
                .raw(
                    http::Method::GET,
                    &format!("/{}/{}/", self.tenant, self.name),
                    bytes::Bytes::new(),
                )
                .await;
            if let Err(e) = served {
                eprintln!(
                    "GET /{}/{}/ after the deploy: {e:#}",
                    self.tenant, self.name
                );
            }
        }
        if let Some(at) = changed_at {
            let secs = SystemTime::now()
                .duration_since(at)
                .unwrap_or_default()
                .as_secs_f64();
            println!("change-to-served: {secs:.2} s (version {version})");
        }
        if first {
            self.print_endpoints();
        }
        Ok(())
    }

    fn print_endpoints(&self) {
        let (t, f, base) = (&self.tenant, &self.name, self.c.base());
        if self.http {
            println!("function URL: {base}/{t}/{f}/");
            let k = &self.shown_token;
            println!("try: curl -H \"authorization: Bearer {k}\" {base}/{t}/{f}/");
        } else {
            println!("function URL: {base}{}", routes::invoke(t, f, None));
            let k = &self.shown_token;
            println!("try: helixflow --url {base} --token {k} invoke -t {t} -f {f} -d '{{}}'");
        }
    }

    /// Print log records not printed yet, oldest first.
    async fn print_new_logs(&mut self, print: bool) {
        let Ok(v) = self
            .c
            .json(
                http::Method::GET,
                &routes::function_logs(&self.tenant, &self.name, 50),
                None,
            )
            .await
        else {
            return;
        };
        for r in v["logs"].as_array().into_iter().flatten().rev() {
            let id = r["request_id"].as_str().unwrap_or_default().to_string();
            if !self.seen_logs.insert(id.clone()) || !print {
                continue;
            }
            println!(
                "[log v{} {id} {} {}us]",
                r["version"],
                r["outcome"].as_str().unwrap_or_default(),
                r["duration_us"]
            );
            print!("{}", r["stdout"].as_str().unwrap_or_default());
            eprint!("{}", r["stderr"].as_str().unwrap_or_default());
        }
    }

    /// Poll the sources every 250 ms; after a change and 200 ms of quiet, rebuild and
    /// redeploy. Print new log records every second. Runs until cancelled.
    async fn watch(&mut self) -> Result<()> {
        let mut last = snapshot(&self.project.dir);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            let mut now = snapshot(&self.project.dir);
            if now != last {
                // Debounce: wait for 200 ms without a further change.
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let again = snapshot(&self.project.dir);
                    if again == now {
                        break;
                    }
                    now = again;
                }
                let changed_at = now
                    .iter()
                    .filter(|e| !last.contains(e))
                    .map(|(_, t)| *t)
                    .max();
                last = now;
                println!("change detected");
                self.build_and_deploy(changed_at).await?;
            }
            if n.is_multiple_of(4) && self.live.is_some() {
                self.print_new_logs(true).await;
            }
        }
    }
}

pub async fn dev(url: &str, token: Option<String>, args: DevArgs) -> Result<()> {
    let DevArgs { dir, tenant, name } = args;
    check_toolchain()?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", dir.display()))?;
    let project = project(&dir)?;
    let name = name.unwrap_or_else(|| project.package.clone());
    let probe = Client::new(url, None);
    let (node, token) = match probe.json(http::Method::GET, "/healthz", None).await {
        Ok(_) => {
            println!("using the node at {url}");
            (None, token)
        }
        Err(e)
            if matches!(
                e.downcast_ref::<ClientError>(),
                Some(ClientError::Connect { .. })
            ) =>
        {
            let (node, key) = start_node(url, &project).await?;
            println!("its admin key (this dev node only): {key}");
            (Some(node), Some(key))
        }
        Err(e) => return Err(e),
    };
    let shown_token = match &node {
        Some(_) => token.clone().unwrap_or_default(),
        None => "$HELIXFLOW_TOKEN".to_string(),
    };
    let c = Client::new(url, token);
    match c
        .json(
            http::Method::POST,
            &routes::tenants(),
            Some(serde_json::json!({"name": tenant})),
        )
        .await
    {
        Ok(_) => println!("created tenant {tenant}"),
        // 409: it exists; 403: a tenant's own key may not create tenants (the deploy
        // says whether it may deploy there).
        Err(e)
            if matches!(
                e.downcast_ref::<ClientError>(),
                Some(ClientError::Api {
                    status: 409 | 403,
                    ..
                })
            ) => {}
        Err(e) => return Err(e.context(format!("creating tenant {tenant}"))),
    }
    let mut d = Dev {
        c,
        tenant,
        name,
        project,
        live: None,
        http: false,
        seen_logs: HashSet::new(),
        shown_token,
    };
    let run = async {
        d.build_and_deploy(None).await?;
        // Earlier records (of earlier sessions) are not news.
        d.print_new_logs(false).await;
        println!("watching {} (Ctrl-C stops)", d.project.dir.display());
        d.watch().await
    };
    let out = tokio::select! {
        r = run => r,
        _ = stop_signal() => Ok(()),
    };
    if let Some(node) = node {
        println!("stopping the dev node (pid {})", node.child.id());
        drop(node);
    }
    out
}

/// Ctrl-C (SIGINT), or SIGTERM on Unix: either way the node dev started goes with it.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
