//! `helixflow new`: a ready function project from a template built into the binary
//! (the files under `host/helixflow/templates/<name>/`, plus the WordPiece tokenizer of
//! `functions/embed-minilm` for `rust-embeddings`). Rust templates build with cargo,
//! Python ones (`python-http`, `python-event`) with componentize-py against the
//! checkout's `guest-sdk/python` and `wit/guest`.
//!
//! A project depends on the guest SDK (`helixflow-guest-sdk`, not on crates.io) by
//! path: `--sdk` / `HELIXFLOW_GUEST_SDK`, else the `guest-sdk/` of the source tree this
//! binary was built from. Each project is its own Cargo workspace, so it builds anywhere.
//! A JavaScript project (`js-*`) depends on the SDK's `js/` package (`@helixflow/guest`)
//! as a `file:` dependency, and builds with `npm run build` (componentize-js).

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// The templates.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Template {
    /// An HTTP handler (wasi:http): `GET /{tenant}/{name}/...`.
    #[value(name = "rust-http")]
    Http,
    /// An event handler (Lambda-style, JSON in and out): `helixflow invoke`.
    #[value(name = "rust-event")]
    Event,
    /// Sentence embeddings through wasi:nn (`Graph::load_by_name("all-minilm-l6-v2")`).
    #[value(name = "rust-embeddings")]
    Embeddings,
    /// An HTTP handler in Python (componentize-py, wasi:http).
    #[value(name = "python-http")]
    PythonHttp,
    /// An event handler in Python (componentize-py): `helixflow invoke`.
    #[value(name = "python-event")]
    PythonEvent,
    /// An HTTP handler in JavaScript (componentize-js): `GET /{tenant}/{name}/...`.
    #[value(name = "js-http")]
    JsHttp,
    /// An event handler in JavaScript (JSON in and out): `helixflow invoke`.
    #[value(name = "js-event")]
    JsEvent,
}

/// A template's files: (relative path, contents).
type Files = &'static [(&'static str, &'static str)];

macro_rules! files {
    ($dir:literal: $($path:literal => $src:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../templates/", $dir, "/", $src)))),*]
    };
}

/// `rust-embeddings`' tokenizer and vocabulary: those of `functions/embed-minilm`
/// (one copy in the tree, tested there against HF `tokenizers`).
const EMBED_MINILM: Files = &[
    (
        "build.rs",
        include_str!("../../../../functions/embed-minilm/build.rs"),
    ),
    (
        "vocab.txt",
        include_str!("../../../../functions/embed-minilm/vocab.txt"),
    ),
    (
        "NOTICE",
        include_str!("../../../../functions/embed-minilm/NOTICE"),
    ),
    (
        "src/wordpiece.rs",
        include_str!("../../../../functions/embed-minilm/src/wordpiece.rs"),
    ),
];

impl Template {
    /// (relative path, contents with `{{name}}`, `{{crate}}`, `{{sdk}}`, `{{pysdk}}`
    /// (the Python guest SDK) and `{{wit}}` (the guest WIT worlds) placeholders).
    fn files(self) -> Vec<(&'static str, &'static str)> {
        let (own, extra): (Files, Files) = match self {
            Template::Http => (
                files!("rust-http": "Cargo.toml" => "Cargo.toml", "src/lib.rs" => "src/lib.rs",
                    "src/tests.rs" => "src/tests.rs", "README.md" => "README.md",
                    ".gitignore" => "gitignore"),
                &[],
            ),
            Template::Event => (
                files!("rust-event": "Cargo.toml" => "Cargo.toml", "src/lib.rs" => "src/lib.rs",
                    "src/tests.rs" => "src/tests.rs", "README.md" => "README.md",
                    ".gitignore" => "gitignore"),
                &[],
            ),
            Template::Embeddings => (
                files!("rust-embeddings": "Cargo.toml" => "Cargo.toml", "src/lib.rs" => "src/lib.rs",
                    "src/tests.rs" => "src/tests.rs", "README.md" => "README.md",
                    ".gitignore" => "gitignore"),
                EMBED_MINILM,
            ),
            Template::PythonHttp => (
                files!("python-http": "pyproject.toml" => "pyproject.toml", "src/app.py" => "src/app.py",
                    "tests/test_app.py" => "tests/test_app.py", "README.md" => "README.md",
                    ".gitignore" => "gitignore"),
                &[],
            ),
            Template::PythonEvent => (
                files!("python-event": "pyproject.toml" => "pyproject.toml", "src/app.py" => "src/app.py",
                    "tests/test_app.py" => "tests/test_app.py", "README.md" => "README.md",
                    ".gitignore" => "gitignore"),
                &[],
            ),
            Template::JsHttp => (
                files!("js-http": "package.json" => "package.json", "src/index.js" => "src/index.js",
                    "src/handler.js" => "src/handler.js", "test/handler.test.js" => "test/handler.test.js",
                    "README.md" => "README.md", ".gitignore" => "gitignore"),
                &[],
            ),
            Template::JsEvent => (
                files!("js-event": "package.json" => "package.json", "src/index.js" => "src/index.js",
                    "src/handler.js" => "src/handler.js", "test/handler.test.js" => "test/handler.test.js",
                    "README.md" => "README.md", ".gitignore" => "gitignore"),
                &[],
            ),
        };
        own.iter().chain(extra).copied().collect()
    }
}

// `helixflow new` (its help text is the `Command::New` variant's).
#[derive(Args)]
pub struct NewArgs {
    /// The function's name (and its crate's): 1-63 characters a-z, 0-9 and '-',
    /// starting with a letter.
    name: String,
    /// What kind of function.
    #[arg(long, value_enum)]
    template: Template,
    /// Where to write the project (default: ./NAME). Must not exist or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The guest SDK's directory (helixflow-guest-sdk, a path dependency: it is not on
    /// crates.io). Default: the guest-sdk/ of the source tree this binary was built from.
    #[arg(long, env = "HELIXFLOW_GUEST_SDK")]
    sdk: Option<PathBuf>,
    /// Write into a non-empty directory, overwriting the template's files.
    #[arg(long)]
    force: bool,
}

/// The guest SDK to depend on, canonical: `--sdk`, else this build's source tree.
pub(crate) fn guest_sdk(flag: Option<&Path>) -> Result<PathBuf> {
    let is_sdk = |p: &Path| p.join("Cargo.toml").is_file() && p.join("src/lib.rs").is_file();
    if let Some(p) = flag {
        return p
            .canonicalize()
            .ok()
            .filter(|p| is_sdk(p))
            .ok_or_else(|| {
                anyhow!(
                    "--sdk {}: no guest SDK there (expected the guest-sdk/ directory of a HelixFlow checkout)",
                    p.display()
                )
            });
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guest-sdk")
        .canonicalize()
        .ok()
        .filter(|p| is_sdk(p))
        .ok_or_else(|| {
            anyhow!(
                "cannot find the HelixFlow guest SDK (helixflow-guest-sdk is not on crates.io): pass --sdk PATH (or set HELIXFLOW_GUEST_SDK) to the guest-sdk/ directory of a HelixFlow checkout"
            )
        })
}

/// A function name the node accepts (see the registry's `validate_name`).
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "function name {name:?} is invalid: use 1-63 characters a-z, 0-9 and '-', starting with a letter"
        );
    }
    Ok(())
}

/// `s` as the inside of a TOML basic string.
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn new(args: NewArgs) -> Result<()> {
    let NewArgs {
        name,
        template,
        dir,
        sdk,
        force,
    } = args;
    check_name(&name)?;
    let sdk = guest_sdk(sdk.as_deref())?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    let non_empty = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !force {
        bail!(
            "{} exists and is not empty: choose another --dir, or pass --force to write the template's files into it",
            dir.display()
        );
    }
    let crate_name = name.replace('-', "_");
    // A TOML basic string and a JSON string escape a path the same way (backslash, quote).
    let sdk_str = toml_escape(&sdk.to_string_lossy());
    // The Python guest SDK and the guest worlds of the same checkout.
    let pysdk_str = toml_escape(&sdk.join("python").to_string_lossy());
    let wit = sdk
        .parent()
        .map(|p| p.join("wit/guest"))
        .unwrap_or_default();
    let wit_str = toml_escape(&wit.to_string_lossy());
    for (rel, text) in template.files() {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = text
            .replace("{{name}}", &name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk_str)
            .replace("{{pysdk}}", &pysdk_str)
            .replace("{{wit}}", &wit_str);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let kind = template
        .to_possible_value()
        .map(|v| v.get_name().to_string());
    println!(
        "created {name} ({}) in {}",
        kind.unwrap_or_default(),
        dir.display()
    );
    println!("next: cd {} && helixflow dev", dir.display());
    Ok(())
}
