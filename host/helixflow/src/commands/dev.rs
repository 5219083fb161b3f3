//! The local loop: `build` and `dev` (`new` is in [`super::scaffold`], `doctor` in
//! [`super::doctor`]).
//!
//! `build` detects the project's language by its manifest and builds a component:
//! `Cargo.toml` -> `cargo build --release --target wasm32-wasip2` (the path from `cargo
//! metadata`); `pyproject.toml` with `[tool.helixflow]` -> componentize-py into
//! `target/helixflow/NAME.wasm`; `package.json` with `"helixflow": {"component": ...}`
//! -> `npm install` (when `node_modules/` is missing) and `npm run build`. It prints
//! the component's path. `dev` starts a node when none
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

/// The language of a function project, detected from its manifest.
#[derive(Debug, Clone)]
enum Lang {
    /// `Cargo.toml`: `cargo build --release --target wasm32-wasip2`.
    Rust,
    /// `pyproject.toml` with a `[tool.helixflow]` table: componentize-py.
    Python(PyProject),
    /// `package.json` with a `"helixflow"` key: `npm install` (when `node_modules/` is
    /// missing), then `npm run build`.
    Js,
}

/// A Python project's `[tool.helixflow]`, resolved.
#[derive(Debug, Clone)]
struct PyProject {
    /// `http-function`, `event-function` or `http-event-function` (wit/guest's worlds).
    world: String,
    /// The module componentize-py componentizes (it must define `IncomingHandler`
    /// and/or `EventHandler`).
    module: String,
    /// The directory holding the module (`src`, default: the project's).
    src: PathBuf,
    /// The Python guest SDK (`helixflow` package): `sdk`, else the checkout's.
    sdk: PathBuf,
    /// The WIT worlds (`wit`, else the checkout's `wit/guest`).
    wit: PathBuf,
}

/// A function project.
struct Project {
    dir: PathBuf,
    /// The package's (and default function's) name.
    package: String,
    lang: Lang,
    /// Not watched by `dev`: build outputs (Cargo's target directory, `target/`,
    /// `node_modules/`, the JS output directory).
    ignored: Vec<PathBuf>,
    /// The component the build writes.
    artifact: PathBuf,
}

/// The componentize-py release `helixflow build` is tested with.
pub(crate) const COMPONENTIZE_PY_PIN: &str = "0.25.1";
/// The one-line fix for a missing componentize-py.
pub(crate) fn componentize_py_fix() -> String {
    format!("pip install componentize-py=={COMPONENTIZE_PY_PIN}")
}
/// The one-line fix for a missing Node.js/npm.
pub(crate) const NPM_FIX: &str = "apt-get install -y nodejs npm (or NodeSource: curl -fsSL https://deb.nodesource.com/setup_22.x | bash - && apt-get install -y nodejs)";

/// componentize-py: `$HELIXFLOW_COMPONENTIZE_PY`, else `componentize-py` on PATH.
pub(crate) fn componentize_py() -> String {
    std::env::var("HELIXFLOW_COMPONENTIZE_PY").unwrap_or_else(|_| "componentize-py".into())
}

fn project(dir: &Path) -> Result<Project> {
    if dir.join("Cargo.toml").is_file() {
        rust_project(dir)
    } else if dir.join("pyproject.toml").is_file() {
        py_project(dir)
    } else if dir.join("package.json").is_file() {
        js_project(dir)
    } else {
        bail!(
            "{}: no function project there (no Cargo.toml, pyproject.toml or package.json); `helixflow new NAME --template rust-http|python-http|js-http` makes one",
            dir.display()
        )
    }
}

/// A Python project: `pyproject.toml`'s `[project] name` and `[tool.helixflow]`.
fn py_project(dir: &Path) -> Result<Project> {
    let dir = dir.canonicalize()?;
    let manifest = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let hf = doc
        .get("tool")
        .and_then(|t| t.get("helixflow"))
        .and_then(|t| t.as_table())
        .ok_or_else(|| {
            anyhow!(
                "{}: no [tool.helixflow] table, so not a HelixFlow function (add `[tool.helixflow]` with `world = \"http-function\"` and `module = \"app\"`)",
                manifest.display()
            )
        })?;
    let get = |k: &str| hf.get(k).and_then(|v| v.as_str());
    let package = doc
        .get("project")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| anyhow!("{}: no [project] name", manifest.display()))?
        .to_string();
    let world = get("world").unwrap_or("http-function").to_string();
    const WORLDS: [&str; 3] = ["http-function", "event-function", "http-event-function"];
    if !WORLDS.contains(&world.as_str()) {
        bail!(
            "{}: [tool.helixflow] world = {world:?}: use one of {}",
            manifest.display(),
            WORLDS.join(", ")
        );
    }
    let rel = |k: &str| get(k).map(|p| dir.join(p));
    // The checkout's SDK: the directory of `helixflow new`'s Rust SDK holds `python/`,
    // and the repository's `wit/guest` sits beside it.
    let checkout = || -> Result<PathBuf> {
        let env = std::env::var_os("HELIXFLOW_GUEST_SDK").map(PathBuf::from);
        super::scaffold::guest_sdk(env.as_deref())
    };
    let sdk = match rel("sdk") {
        Some(p) => p,
        None => checkout()?.join("python"),
    };
    let wit = match rel("wit") {
        Some(p) => p,
        None => checkout()?.join("../wit/guest"),
    };
    for (what, p, key) in [
        ("Python guest SDK", &sdk, "sdk"),
        ("WIT directory", &wit, "wit"),
    ] {
        if !p.is_dir() {
            bail!(
                "{}: the {what} {} does not exist (set [tool.helixflow] {key} to it)",
                manifest.display(),
                p.display()
            );
        }
    }
    let target = dir.join("target");
    Ok(Project {
        artifact: target.join("helixflow").join(format!("{package}.wasm")),
        ignored: vec![target],
        lang: Lang::Python(PyProject {
            world,
            module: get("module").unwrap_or("app").to_string(),
            src: rel("src").unwrap_or_else(|| dir.clone()),
            sdk,
            wit,
        }),
        package,
        dir,
    })
}

/// A JavaScript project: `package.json`'s `name` and `helixflow.component`.
fn js_project(dir: &Path) -> Result<Project> {
    let dir = dir.canonicalize()?;
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let pkg: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let component = pkg["helixflow"]["component"].as_str().ok_or_else(|| {
        anyhow!(
            "{}: no \"helixflow\": {{\"component\": \"dist/NAME.wasm\"}}, so not a HelixFlow function",
            manifest.display()
        )
    })?;
    if pkg["scripts"]["build"].as_str().is_none() {
        bail!(
            "{}: no \"scripts\": {{\"build\": ...}} (helixflow build runs `npm run build`)",
            manifest.display()
        );
    }
    let name = pkg["name"]
        .as_str()
        .ok_or_else(|| anyhow!("{}: no \"name\"", manifest.display()))?;
    // `@scope/name` -> `name`.
    let package = name.rsplit('/').next().unwrap_or(name).to_string();
    let artifact = dir.join(component);
    let out_dir = artifact.parent().unwrap_or(&dir).to_path_buf();
    Ok(Project {
        ignored: vec![dir.join("node_modules"), out_dir, dir.join("target")],
        artifact,
        lang: Lang::Js,
        package,
        dir,
    })
}

/// A Rust project: what `cargo metadata` says about it.
fn rust_project(dir: &Path) -> Result<Project> {
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
    // In a workspace, `packages` lists every member: take the one of this directory.
    let manifest = dir.join("Cargo.toml").canonicalize()?;
    let pkg = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"]
                .as_str()
                .and_then(|m| Path::new(m).canonicalize().ok())
                .is_some_and(|m| m == manifest)
        })
        .ok_or_else(|| {
            anyhow!(
                "{}: no package in it (a workspace's root manifest? run in the function's own directory, or pass --dir)",
                manifest.display()
            )
        })?;
    let package = pkg["name"]
        .as_str()
        .ok_or_else(|| anyhow!("{}: a package without a name", manifest.display()))?;
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
        dir: manifest.parent().unwrap_or(dir).to_path_buf(),
        package: package.to_string(),
        lang: Lang::Rust,
        ignored: vec![PathBuf::from(target_dir)],
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

/// The project's toolchain is there, or a one-line fix.
fn check_toolchain(lang: &Lang) -> Result<()> {
    match lang {
        Lang::Rust => {
            output("cargo", &["--version"]).map_err(|e| {
                anyhow!(
                    "cargo is missing ({e}): install Rust from https://rustup.rs, then `{ADD_TARGET}`"
                )
            })?;
            if !target_installed().unwrap_or(true) {
                bail!("the {TARGET} target is not installed: run `{ADD_TARGET}`");
            }
        }
        Lang::Python(_) => {
            let cpy = componentize_py();
            output(&cpy, &["--version"]).map_err(|e| {
                anyhow!(
                    "componentize-py is missing ({e}): run `{}` (or set HELIXFLOW_COMPONENTIZE_PY to it)",
                    componentize_py_fix()
                )
            })?;
        }
        Lang::Js => {
            output("npm", &["--version"])
                .map_err(|e| anyhow!("npm is missing ({e}): {NPM_FIX}"))?;
        }
    }
    Ok(())
}

/// Run `cmd` in `dir`, its output passed through; whether it succeeded.
async fn run_step(
    mut cmd: tokio::process::Command,
    dir: &Path,
    what: &str,
    fix: &str,
) -> Result<bool> {
    let status = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| anyhow!("cannot run {what} ({e}): {fix}"))?;
    Ok(status.success())
}

/// Build the component, the tools' output passed through. Ok(false) when the build
/// failed; then no artifact of this build is left (an earlier one may remain for Rust
/// and JS, whose tools write in place; Python builds write a temporary file first).
async fn build_project(p: &Project) -> Result<bool> {
    match &p.lang {
        Lang::Rust => {
            let mut cmd = tokio::process::Command::new("cargo");
            cmd.args(["build", "--release", "--target", TARGET]);
            let ok = run_step(cmd, &p.dir, "cargo", "install Rust from https://rustup.rs").await?;
            Ok(ok && p.artifact.is_file())
        }
        Lang::Python(py) => {
            let out_dir = p.artifact.parent().unwrap_or(&p.dir);
            std::fs::create_dir_all(out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            let tmp = p.artifact.with_extension("wasm.tmp");
            let _ = std::fs::remove_file(&tmp);
            let mut cmd = tokio::process::Command::new(componentize_py());
            cmd.arg("-q")
                .arg("-d")
                .arg(&py.wit)
                .args(["-w", &py.world, "componentize", &py.module, "-p"])
                .arg(&py.src)
                .arg("-p")
                .arg(&py.sdk)
                .arg("-o")
                .arg(&tmp)
                // The Python traceback says what is wrong; a Rust backtrace of
                // componentize-py itself would bury it.
                .env("RUST_BACKTRACE", "0")
                .env("RUST_LIB_BACKTRACE", "0");
            let ok = run_step(cmd, &p.dir, "componentize-py", &componentize_py_fix()).await?;
            if !ok || !tmp.is_file() {
                let _ = std::fs::remove_file(&tmp);
                return Ok(false);
            }
            std::fs::rename(&tmp, &p.artifact)
                .with_context(|| format!("writing {}", p.artifact.display()))?;
            Ok(true)
        }
        Lang::Js => {
            if !p.dir.join("node_modules").is_dir() {
                let mut cmd = tokio::process::Command::new("npm");
                cmd.args(["install", "--no-audit", "--no-fund"]);
                if !run_step(cmd, &p.dir, "npm", NPM_FIX).await? {
                    return Ok(false);
                }
            }
            let mut cmd = tokio::process::Command::new("npm");
            cmd.args(["run", "build"]);
            let ok = run_step(cmd, &p.dir, "npm", NPM_FIX).await?;
            Ok(ok && p.artifact.is_file())
        }
    }
}

pub async fn build(args: BuildArgs) -> Result<()> {
    println!("{}", build_component(&args.dir).await?.display());
    Ok(())
}

/// Builds the project in `dir` (as `helixflow build`: Rust, Python or JavaScript); the
/// component's path.
pub(crate) async fn build_component(dir: &Path) -> Result<PathBuf> {
    let p = project(dir)?;
    check_toolchain(&p.lang)?;
    if !build_project(&p).await? {
        bail!("the build of {} failed (the errors are above)", p.package);
    }
    Ok(p.artifact)
}

/// A node `dev` started: stopped (and only it) when `dev` ends, however it ends.
struct StartedNode {
    child: std::process::Child,
    log: PathBuf,
}

impl StartedNode {
    /// The last `n` lines of its log.
    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for StartedNode {
    /// SIGTERM (serve writes its usage then), up to 5 s to exit, then SIGKILL.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = self.child.id();
        println!("stopping the dev node (pid {pid})");
        let termed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while termed && Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// Write the admin key to `path`, readable by its owner only.
fn write_key(path: &Path, key: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        f.mode(0o600);
        // An older file keeps its mode through `create`: tighten it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    f.open(path)
        .and_then(|mut f| f.write_all(key.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// Start `helixflow serve` (this binary) at `url` with embedded defaults and a fresh
/// admin key (written to `target/helixflow-dev/admin.key`, whose path is returned), data
/// and log under `target/helixflow-dev/`.
async fn start_node(url: &str, p: &Project) -> Result<(StartedNode, String, PathBuf)> {
    let listen = loopback_listen(url)?;
    let home = p.dir.join("target/helixflow-dev");
    std::fs::create_dir_all(home.join("data"))
        .with_context(|| format!("creating {}", home.display()))?;
    let log_path = home.join("serve.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let key = random_key();
    let key_path = home.join("admin.key");
    write_key(&key_path, &key)?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["serve", "--listen", &listen, "--data-dir"])
        .arg(home.join("data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // A dev node is on its own: the caller's HELIXFLOW_* settings (a fleet's metadata
    // and artifact stores, node id, OTLP endpoint, secrets key, ...) must not reach it.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HELIXFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HELIXFLOW_ADMIN_KEY", &key);
    // Its own process group: a terminal's Ctrl-C reaches dev only, which stops the node
    // with SIGTERM so that it writes its usage.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().context("starting helixflow serve")?;
    let mut node = StartedNode {
        child,
        log: log_path.clone(),
    };
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
    // What answered must be our node: still running, and taking our key.
    let taken = || {
        format!(
            "another process holds {listen}: pass --url http://127.0.0.1:<free port>, or stop what listens there"
        )
    };
    if let Some(status) = node.child.try_wait()? {
        bail!(
            "the dev node exited ({status}) but something answers at {url}: {}; the node's log:\n{}",
            taken(),
            node.log_tail(20)
        );
    }
    if let Err(e) = Client::new(url, Some(key.clone()))
        .json(http::Method::GET, &routes::whoami(), None)
        .await
    {
        bail!(
            "the node at {url} refuses the dev node's admin key ({e:#}): {}",
            taken()
        );
    }
    println!(
        "started a dev node at {url} (pid {}, data and log in {})",
        node.child.id(),
        home.display()
    );
    Ok((node, key, key_path))
}

/// A file's path, modification time and length.
type Stamp = (PathBuf, SystemTime, u64);

/// Stamps of what a build may read: every file of the project (Cargo.toml, build.rs,
/// src/, pyproject.toml, *.py, package.json, data such as a vocab.txt, ...), except
/// build outputs (`ignored`, any `target/`, `node_modules/`, `__pycache__/`) and hidden
/// entries (.git). Symbolic links are stamped, not followed.
fn snapshot(dir: &Path, ignored: &[PathBuf]) -> Vec<Stamp> {
    fn walk(p: &Path, ignored: &[PathBuf], out: &mut Vec<Stamp>) {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                let name = e.file_name();
                let name = name.to_string_lossy();
                let skip = name.starts_with('.')
                    || matches!(&*name, "target" | "node_modules" | "__pycache__")
                    || ignored.contains(&path);
                if !skip {
                    walk(&path, ignored, out);
                }
            }
        } else if let Ok(m) = meta.modified() {
            out.push((p.to_path_buf(), m, meta.len()));
        }
    }
    let mut out = Vec::new();
    walk(dir, ignored, &mut out);
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
    /// How the printed curl/invoke lines authenticate: the key file of the node dev
    /// started, else `$HELIXFLOW_TOKEN`.
    shown_token: String,
    /// The node dev started, if it did.
    node: Option<StartedNode>,
}

impl Dev {
    /// Build and deploy; on a failed build or deploy, say so and keep the last version.
    /// `changed_at`: when the change happened (to report change-to-served).
    async fn build_and_deploy(&mut self, changed_at: Option<SystemTime>) -> Result<()> {
        println!("building {} ...", self.project.package);
        if !build_project(&self.project).await? {
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
                // Refused or not found on the first deploy: no edit will fix that.
                if self.live.is_none()
                    && let Some(ClientError::Api {
                        status: 401 | 403 | 404,
                        ..
                    }) = e.downcast_ref::<ClientError>()
                {
                    return Err(e.context(format!(
                        "deploying {}/{} to {}",
                        self.tenant,
                        self.name,
                        self.c.base()
                    )));
                }
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
        let mut served_ok = true;
        if self.http {
            // Served: one request through the alias answers 2xx (`raw` fails otherwise).
            let served = self
                .c
                .raw(
                    http::Method::GET,
                    &format!("/{}/{}/", self.tenant, self.name),
                    bytes::Bytes::new(),
                )
                .await;
            if let Err(e) = served {
                served_ok = false;
                eprintln!(
                    "GET /{}/{}/ after the deploy: {e:#}",
                    self.tenant, self.name
                );
            }
        }
        if let Some(at) = changed_at.filter(|_| served_ok) {
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
            println!("try: helixflow --url {base} --token \"{k}\" invoke -t {t} -f {f} -d '{{}}'");
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

    /// The project's stamps now.
    fn snapshot(&self) -> Vec<Stamp> {
        snapshot(&self.project.dir, &self.project.ignored)
    }

    /// An error when the node dev started has exited.
    fn check_node(&mut self) -> Result<()> {
        if let Some(node) = &mut self.node
            && let Some(status) = node.child.try_wait()?
        {
            bail!(
                "the dev node exited ({status}); the end of its log ({}):\n{}",
                node.log.display(),
                node.log_tail(30)
            );
        }
        Ok(())
    }

    /// Poll the sources every 250 ms; after a change and 200 ms of quiet, rebuild and
    /// redeploy. Print new log records every second. Runs until cancelled, or until the
    /// node dev started exits.
    async fn watch(&mut self) -> Result<()> {
        let mut last = self.snapshot();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            self.check_node()?;
            let mut now = self.snapshot();
            if now != last {
                // Debounce: wait for 200 ms without a further change.
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let again = self.snapshot();
                    if again == now {
                        break;
                    }
                    now = again;
                }
                let changed_at = now
                    .iter()
                    .filter(|e| !last.contains(e))
                    .map(|(_, t, _)| *t)
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
    // First: from here on a signal ends dev cleanly, and takes any node it started
    // with it (StartedNode's Drop), whatever dev is doing then.
    let mut stop = StopSignals::install()?;
    tokio::select! {
        r = run(url, token, args) => r,
        s = stop.recv() => {
            println!("{s}: stopping");
            Ok(())
        }
    }
}

async fn run(url: &str, token: Option<String>, args: DevArgs) -> Result<()> {
    let DevArgs { dir, tenant, name } = args;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", dir.display()))?;
    let project = project(&dir)?;
    check_toolchain(&project.lang)?;
    let name = name.unwrap_or_else(|| project.package.clone());
    let probe = Client::new(url, None);
    let (node, token, shown_token) = match probe.json(http::Method::GET, "/healthz", None).await {
        Ok(_) => {
            println!("using the node at {url}");
            (None, token, "$HELIXFLOW_TOKEN".to_string())
        }
        Err(e)
            if matches!(
                e.downcast_ref::<ClientError>(),
                Some(ClientError::Connect { .. })
            ) =>
        {
            let (node, key, key_path) = start_node(url, &project).await?;
            println!(
                "its admin key (this dev node only) is in {}",
                key_path.display()
            );
            (
                Some(node),
                Some(key),
                format!("$(cat {})", key_path.display()),
            )
        }
        Err(e) => return Err(e),
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
        Err(e)
            if matches!(
                e.downcast_ref::<ClientError>(),
                Some(ClientError::Api { status: 401, .. })
            ) =>
        {
            bail!(
                "the node at {url} was not started by this dev and refuses the credentials ({e:#}): set HELIXFLOW_TOKEN/--token, or use --url http://127.0.0.1:<free port> to start one"
            )
        }
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
        node,
    };
    d.build_and_deploy(None).await?;
    // Earlier records (of earlier sessions) are not news.
    d.print_new_logs(false).await;
    println!("watching {} (Ctrl-C stops)", d.project.dir.display());
    d.watch().await
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP, listened for from the start of `dev`.
struct StopSignals {
    #[cfg(unix)]
    signals: Vec<(&'static str, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut signals = Vec::new();
            for (name, kind) in [
                ("SIGINT", SignalKind::interrupt()),
                ("SIGTERM", SignalKind::terminate()),
                ("SIGHUP", SignalKind::hangup()),
            ] {
                signals.push((
                    name,
                    signal(kind).with_context(|| format!("listening for {name}"))?,
                ));
            }
            Ok(Self { signals })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The name of the first signal that arrives.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            let waits = self.signals.iter_mut().map(|(name, s)| {
                Box::pin(async move {
                    s.recv().await;
                    *name
                })
            });
            futures::future::select_all(waits).await.0
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
