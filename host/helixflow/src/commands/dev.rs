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
//!
//! A Python project is built by `dev` around a dev runner (`dev_runner.py`, see
//! [`DEV_RUNNER`]): an edit that changes only `.py` files under `src` is served without
//! componentize-py, as the same runner bytes deployed again with the edited sources in
//! the function's environment (the node reuses the compiled code); any other change, or
//! an edit the runner cannot import without a build, takes a full build.

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
        Lang::Python(py) => componentize(p, py, &py.module, None, &p.artifact).await,
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

/// componentize-py `module` (on the path: `runner_dir` first when given, then the
/// project's `src` and the SDK) into `artifact`, through a temporary file: a failed
/// build leaves no component. Ok(false) when it failed (its errors passed through).
async fn componentize(
    p: &Project,
    py: &PyProject,
    module: &str,
    runner_dir: Option<&Path>,
    artifact: &Path,
) -> Result<bool> {
    let out_dir = artifact.parent().unwrap_or(&p.dir);
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let tmp = artifact.with_extension("wasm.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut cmd = tokio::process::Command::new(componentize_py());
    cmd.arg("-q")
        .arg("-d")
        .arg(&py.wit)
        .args(["-w", &py.world, "componentize", module]);
    if let Some(dir) = runner_dir {
        cmd.arg("-p").arg(dir);
    }
    cmd.arg("-p")
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
    std::fs::rename(&tmp, artifact).with_context(|| format!("writing {}", artifact.display()))?;
    Ok(true)
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

/// The dev runner (`dev_runner.py`): what `dev` componentizes for a Python project in
/// place of its app module, so that edits of `.py` files are served without a build.
/// Invariant: a dev version differs from `helixflow build`'s component only by this
/// runner module (it imports the app at pre-initialisation as a normal build does and
/// re-exports its handlers); `build` never uses it, so it never ships outside `dev`.
const DEV_RUNNER: &str = include_str!("dev_runner.py");
/// The runner's module name (in `target/helixflow-dev/runner/`).
const RUNNER_MODULE: &str = "helixflow_dev_runner";
/// The function's environment variable that carries the edited sources.
const SOURCES_VAR: &str = "HELIXFLOW_DEV_SOURCES";
/// Set in the check function's environment: the runner only tries the import.
const CHECK_VAR: &str = "HELIXFLOW_DEV_CHECK";
/// The most config (JSON, the user's env included) a reload sends: it travels in the
/// deploy's `x-helixflow-config` header, and a node reads request heads up to 64 KiB
/// (and caps a function's env at 64 KiB); the rest is room for the other headers.
const CONFIG_MAX: usize = 60 * 1024;

/// What [`Dev::reload`] did.
enum Reload {
    /// Served (or refused with the project's error): no build.
    Done,
    /// A build is needed; why, when it is not the first.
    Rebuild(Option<String>),
}

/// `dev`'s state for a Python project's dev runner.
struct PyDev {
    /// `target/helixflow-dev/runner/`: the runner module.
    runner_dir: PathBuf,
    /// `target/helixflow-dev/runner.wasm`: the runner component.
    runner: PathBuf,
    /// The `.py` sources under `src` (relative path -> text) the runner was last built
    /// from; None until a build succeeded.
    base: Option<std::collections::BTreeMap<String, String>>,
    /// Every `.py` file under `src` seen since that build: one added by an edit and
    /// deleted by a later one is sent as deleted (imported, it fails as it would).
    seen: std::collections::BTreeSet<String>,
    /// Why the next change needs a build whatever it is (a change other than `.py`
    /// files under `src` that no build has taken in yet).
    pending_rebuild: Option<String>,
    /// The function edits are checked in (`NAME-dev-check`, same tenant).
    check_fn: String,
}

impl PyDev {
    fn new(p: &Project, name: &str) -> Self {
        let home = p.dir.join("target/helixflow-dev");
        let mut check_fn = name.chars().take(53).collect::<String>();
        check_fn.truncate(check_fn.trim_end_matches('-').len());
        PyDev {
            runner_dir: home.join("runner"),
            runner: home.join("runner.wasm"),
            base: None,
            seen: Default::default(),
            pending_rebuild: None,
            check_fn: format!("{check_fn}-dev-check"),
        }
    }

    /// Write the runner module, naming the app module in it (a JSON string literal is
    /// a Python one).
    fn write_runner(&self, module: &str) -> Result<()> {
        std::fs::create_dir_all(&self.runner_dir)
            .with_context(|| format!("creating {}", self.runner_dir.display()))?;
        let path = self.runner_dir.join(format!("{RUNNER_MODULE}.py"));
        let name = serde_json::Value::from(module).to_string();
        let text = DEV_RUNNER.replace("\"__HELIXFLOW_DEV_APP__\"", &name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// The `.py` files under `src` (as `dev` watches them): relative path (`/`-separated)
/// -> text.
fn py_sources(
    src: &Path,
    ignored: &[PathBuf],
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (path, _, _) in snapshot(src, ignored) {
        if path.extension().is_none_or(|e| e != "py") {
            continue;
        }
        let Ok(rel) = path.strip_prefix(src) else {
            continue;
        };
        let rel: Vec<_> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (Python sources are UTF-8)", path.display()))?;
        out.insert(rel.join("/"), text);
    }
    Ok(out)
}

/// `base64(zlib(json({"files": files})))`: what the runner reads from [`SOURCES_VAR`].
fn sources_payload(files: &serde_json::Map<String, serde_json::Value>) -> Result<String> {
    use base64::Engine as _;
    use std::io::Write as _;
    let json = serde_json::json!({ "files": files }).to_string();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(json.as_bytes())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(z.finish()?))
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
    /// A Python project's dev runner.
    py: Option<PyDev>,
}

impl Dev {
    /// Build and deploy; on a failed build or deploy, say so and keep the last version.
    /// `changed_at`: when the change happened (to report change-to-served); `changed`:
    /// the files that changed (a Python edit of `.py` files under `src` only is served
    /// by the dev runner without a build: [`Dev::reload`]).
    async fn build_and_deploy(
        &mut self,
        changed_at: Option<SystemTime>,
        changed: &[PathBuf],
    ) -> Result<()> {
        let rebuild = match self.reload(changed_at, changed).await? {
            Reload::Done => return Ok(()),
            Reload::Rebuild(why) => why,
        };
        let artifact = match &self.project.lang {
            Lang::Python(py) => {
                let py = py.clone();
                match &rebuild {
                    Some(why) => println!("rebuilding {} ({why}) ...", self.project.package),
                    None => println!("building {} ...", self.project.package),
                }
                let Some(pd) = &mut self.py else {
                    bail!("no dev runner state for a Python project")
                };
                // Read before componentize-py does: what the runner is built from
                // (unreadable sources: no reloads until a build reads them all).
                let base = py_sources(&py.src, &self.project.ignored).ok();
                if let Err(e) = pd.write_runner(&py.module) {
                    eprintln!("{e:#}");
                    self.build_failed();
                    return Ok(());
                }
                let (runner_dir, runner) = (pd.runner_dir.clone(), pd.runner.clone());
                if !componentize(
                    &self.project,
                    &py,
                    RUNNER_MODULE,
                    Some(&runner_dir),
                    &runner,
                )
                .await?
                {
                    self.build_failed();
                    return Ok(());
                }
                if let Some(pd) = &mut self.py {
                    pd.seen = base.iter().flat_map(|b| b.keys().cloned()).collect();
                    pd.base = base;
                    pd.pending_rebuild = None;
                }
                runner
            }
            _ => {
                println!("building {} ...", self.project.package);
                if !build_project(&self.project).await? {
                    self.build_failed();
                    return Ok(());
                }
                self.project.artifact.clone()
            }
        };
        // A fresh runner serves its own sources: no edits in the environment.
        let config = if self.py.is_some() {
            match self.config_with(None).await {
                Ok(c) => Some(c),
                Err(e) => {
                    self.deploy_failed(&e);
                    return Ok(());
                }
            }
        } else {
            None
        };
        self.deploy_and_serve(&artifact, config, changed_at).await
    }

    fn deploy_failed(&self, e: &anyhow::Error) {
        match self.live {
            Some(v) => eprintln!("deploy failed: {e:#}: version {v} keeps serving"),
            None => eprintln!("deploy failed: {e:#}"),
        }
    }

    fn build_failed(&self) {
        match self.live {
            Some(v) => eprintln!("build failed (errors above): version {v} keeps serving"),
            None => eprintln!("build failed (errors above): fix it and save; nothing deployed yet"),
        }
    }

    /// The Python fast path. When only `.py` files under `src` changed since the dev
    /// runner was built (and it serves), send the sources that differ from its build in
    /// the function's environment ([`SOURCES_VAR`]) and deploy the same runner bytes
    /// again: no componentize-py, and the node's compiled code is reused (same SHA-256).
    /// The edit is first imported by the runner in a check function ([`CHECK_VAR`],
    /// the same CPython as the served one): a SyntaxError in the sources or a deleted
    /// module still imported fails the edit there (the alias stays); any other failure
    /// may be the runner's (a standard module not in the snapshot, a file read at
    /// import), so a full build decides.
    async fn reload(
        &mut self,
        changed_at: Option<SystemTime>,
        changed: &[PathBuf],
    ) -> Result<Reload> {
        let (Lang::Python(py), Some(pd)) = (&self.project.lang, &mut self.py) else {
            return Ok(Reload::Rebuild(None));
        };
        let (Some(base), Some(live)) = (&pd.base, self.live) else {
            return Ok(Reload::Rebuild(None));
        };
        if let Some(other) = changed
            .iter()
            .find(|p| !(p.starts_with(&py.src) && p.extension().is_some_and(|e| e == "py")))
        {
            let rel = other.strip_prefix(&self.project.dir).unwrap_or(other);
            pd.pending_rebuild = Some(format!("{} changed", rel.display()));
        }
        if let Some(why) = &pd.pending_rebuild {
            return Ok(Reload::Rebuild(Some(why.clone())));
        }
        let now = match py_sources(&py.src, &self.project.ignored) {
            Ok(now) => now,
            Err(e) => return Ok(Reload::Rebuild(Some(format!("{e:#}")))),
        };
        let mut files = serde_json::Map::new();
        for (rel, src) in &now {
            if base.get(rel) != Some(src) {
                files.insert(rel.clone(), src.clone().into());
            }
        }
        pd.seen.extend(now.keys().cloned());
        for rel in pd.seen.iter().filter(|r| !now.contains_key(*r)) {
            files.insert(rel.clone(), serde_json::Value::Null);
        }
        let (world, src, runner) = (py.world.clone(), py.src.clone(), pd.runner.clone());
        let check_fn = pd.check_fn.clone();
        let payload = match (!files.is_empty())
            .then(|| sources_payload(&files))
            .transpose()
        {
            Ok(p) => p,
            Err(e) => return Ok(Reload::Rebuild(Some(format!("{e:#}")))),
        };
        let config = match self.config_with(payload.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                self.deploy_failed(&e);
                return Ok(Reload::Done);
            }
        };
        let size = config.to_string().len();
        if size > CONFIG_MAX {
            let why = format!(
                "the edited sources ({} KiB compressed) do not fit the function's environment",
                payload.as_deref().map_or(0, str::len) / 1024
            );
            return Ok(Reload::Rebuild(Some(why)));
        }
        // The check: the runner imports the edit in a function of its own.
        let mut check = serde_json::json!({"env": config["env"].clone()});
        for k in ["memory_mb", "timeout_ms", "allow_outbound"] {
            if let Some(v) = config.get(k) {
                check[k] = v.clone();
            }
        }
        check["env"][CHECK_VAR] = "1".into();
        let answer = match self.check(&check_fn, &runner, &check, &world).await {
            Ok(a) => a,
            Err(e) => {
                return Ok(Reload::Rebuild(Some(format!(
                    "the reload check failed: {e:#}"
                ))));
            }
        };
        if answer["ok"].as_bool() != Some(true) {
            let mount = answer["mount"].as_str().unwrap_or_default();
            let error = answer["error"].as_str().unwrap_or_default();
            let error = match mount {
                "" => error.to_string(),
                m => error.replace(&format!("\"{m}/"), &format!("\"{}/", src.display())),
            };
            if answer["definite"].as_bool() == Some(true) {
                eprint!("{error}");
                eprintln!("build failed (errors above): version {live} keeps serving");
                return Ok(Reload::Done);
            }
            let last = error
                .trim()
                .lines()
                .last()
                .unwrap_or("no answer")
                .to_string();
            return Ok(Reload::Rebuild(Some(format!(
                "the edit does not import without a build: {last}"
            ))));
        }
        let n = changed.len();
        println!(
            "reloaded {n} module{} (no rebuild)",
            if n == 1 { "" } else { "s" }
        );
        self.deploy_and_serve(&runner, Some(config), changed_at)
            .await?;
        Ok(Reload::Done)
    }

    /// Deploy `runner` to the check function `name` with `config`, run it once (HTTP
    /// when the world has it, else an event), then delete the function; the runner's
    /// answer. A function of that name that dev did not create (its env has no
    /// [`CHECK_VAR`]) is never touched: the edit is rebuilt instead.
    async fn check(
        &self,
        name: &str,
        runner: &Path,
        config: &serde_json::Value,
        world: &str,
    ) -> Result<serde_json::Value> {
        let fn_path = routes::function(&self.tenant, name);
        match self
            .c
            .json(
                http::Method::GET,
                &routes::function_config(&self.tenant, name),
                None,
            )
            .await
        {
            Ok(existing) if existing["env"].get(CHECK_VAR).is_some() => {}
            Ok(_) => bail!(
                "{}/{name} exists and was not created by helixflow dev; it is left alone",
                self.tenant
            ),
            Err(e)
                if matches!(
                    e.downcast_ref::<ClientError>(),
                    Some(ClientError::Api { status: 404, .. })
                ) => {}
            Err(e) => return Err(e),
        }
        let result = self.check_once(name, runner, config, world).await;
        // The check function holds a copy of the env (secrets included): gone after each
        // check (the live function keeps the compiled runner: same bytes).
        if let Err(e) = self.c.json(http::Method::DELETE, &fn_path, None).await {
            eprintln!(
                "could not delete the check function {}/{name}: {e:#}",
                self.tenant
            );
        }
        result
    }

    async fn check_once(
        &self,
        name: &str,
        runner: &Path,
        config: &serde_json::Value,
        world: &str,
    ) -> Result<serde_json::Value> {
        let path = routes::versions(&self.tenant, name, None, "helixflow dev check");
        let header = vec![("x-helixflow-config", config.to_string())];
        let v = self
            .c
            .upload(&path, runner, "application/wasm", header)
            .await?;
        let version = v["version"]["version"]
            .as_u64()
            .ok_or_else(|| anyhow!("the deploy answered no version: {v}"))?;
        let q = version.to_string();
        let answer = match world {
            "event-function" => {
                let body = bytes::Bytes::from_static(b"{}");
                let path = routes::invoke(&self.tenant, name, Some(&q));
                self.c.raw(http::Method::POST, &path, body).await
            }
            _ => {
                let path = format!("/{}/{name}@{q}/", self.tenant);
                self.c
                    .raw(http::Method::GET, &path, bytes::Bytes::new())
                    .await
            }
        };
        let answer = answer?;
        serde_json::from_slice(&answer)
            .with_context(|| format!("the check answered {}", String::from_utf8_lossy(&answer)))
    }

    /// The function's config (`{}` before its first deploy) with [`SOURCES_VAR`] set to
    /// `sources`, or removed: the rest (the user's own env, limits, ...) is kept.
    async fn config_with(&self, sources: Option<&str>) -> Result<serde_json::Value> {
        let path = routes::function_config(&self.tenant, &self.name);
        let mut config = match self.c.json(http::Method::GET, &path, None).await {
            Ok(v) => v,
            Err(e)
                if matches!(
                    e.downcast_ref::<ClientError>(),
                    Some(ClientError::Api { status: 404, .. })
                ) =>
            {
                serde_json::json!({})
            }
            Err(e) => return Err(e.context(format!("reading {path}"))),
        };
        if !config["env"].is_object() {
            config["env"] = serde_json::json!({});
        }
        let env = config["env"].as_object_mut().expect("an object");
        match sources {
            Some(s) => env.insert(SOURCES_VAR.into(), s.into()),
            None => env.remove(SOURCES_VAR),
        };
        Ok(config)
    }

    /// Deploy `artifact` with `?alias=live` (and `config`, when given), check that it
    /// serves, and report change-to-served.
    async fn deploy_and_serve(
        &mut self,
        artifact: &Path,
        config: Option<serde_json::Value>,
        changed_at: Option<SystemTime>,
    ) -> Result<()> {
        let path = routes::versions(&self.tenant, &self.name, Some("live"), "helixflow dev");
        let headers = config
            .map(|c| vec![("x-helixflow-config", c.to_string())])
            .unwrap_or_default();
        let v = match self
            .c
            .upload(&path, artifact, "application/wasm", headers)
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
                // Added, removed or modified: in one snapshot and not the same in the other.
                let changed: std::collections::BTreeSet<PathBuf> = now
                    .iter()
                    .filter(|e| !last.contains(e))
                    .chain(last.iter().filter(|e| !now.contains(e)))
                    .map(|(p, _, _)| p.clone())
                    .collect();
                let changed: Vec<PathBuf> = changed.into_iter().collect();
                last = now;
                println!("change detected");
                self.build_and_deploy(changed_at, &changed).await?;
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
    let py = matches!(project.lang, Lang::Python(_)).then(|| PyDev::new(&project, &name));
    let mut d = Dev {
        c,
        tenant,
        name,
        project,
        py,
        live: None,
        http: false,
        seen_logs: HashSet::new(),
        shown_token,
        node,
    };
    d.build_and_deploy(None, &[]).await?;
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
