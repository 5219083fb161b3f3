//! `helixflow package --lambda`: the zip a user uploads to AWS Lambda for the
//! `provided.al2023` runtime.
//!
//! The package holds `bootstrap` (a Linux build of this binary, mode 0755),
//! `function.wasm`, optionally `models/{name}.onnx` and the ONNX Runtime library at
//! [`PACKAGED_ORT`]. Lambda starts `bootstrap` with no arguments; `main` sees the
//! program name `bootstrap` and runs `helixflow lambda` (see `lambda.rs`), which reads
//! the component, the models and the library from `LAMBDA_TASK_ROOT`.
//!
//! Everything Lambda would refuse, or that would fail at cold start, is refused here
//! first: a component this host cannot load, a bootstrap that is not a Linux x86_64 or
//! arm64 executable or needs a newer glibc than Amazon Linux 2023's, a package past
//! Lambda's 250 MB unzipped limit. Entries carry a fixed timestamp, so the same inputs
//! give the same zip (and the same CodeSha256).

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// Where the package keeps ONNX Runtime; `helixflow lambda` loads it from there when
/// neither `--ort-dylib` nor `ORT_DYLIB_PATH` names another.
pub const PACKAGED_ORT: &str = "lib/libonnxruntime.so";
/// Lambda's limit on a function's unzipped code (function and layers together):
/// "250 MB", 262,144,000 bytes.
const MAX_UNZIPPED: u64 = 250 << 20;
/// Lambda's limit on a zip uploaded directly ("50 MB"; larger ones go through S3).
const MAX_DIRECT_UPLOAD: u64 = 50 << 20;
/// The glibc of Amazon Linux 2023, which `provided.al2023` runs on.
const AL2023_GLIBC: (u32, u32) = (2, 34);

#[derive(Args)]
pub struct PackageArgs {
    /// Package for AWS Lambda (`provided.al2023`): the only target there is today.
    #[arg(long, required = true)]
    lambda: bool,
    /// The component to package (default: build the project in --dir).
    #[arg(long, value_name = "PATH.wasm", conflicts_with = "dir")]
    function: Option<PathBuf>,
    /// The function project to build (as `helixflow build --dir`) and package.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// A wasi:nn model for the package, as `models/NAME.onnx` (repeatable); the
    /// function loads it with `load_by_name("NAME")`.
    #[arg(long = "model", value_name = "NAME=PATH.onnx")]
    models: Vec<String>,
    /// Add the ONNX Runtime library `ORT_DYLIB_PATH` names, so wasi:nn works with no
    /// layer (a Linux build for the function's architecture).
    #[arg(long)]
    with_onnxruntime: bool,
    /// The Linux helixflow binary to ship as `bootstrap` (default: this one).
    #[arg(long, value_name = "PATH")]
    bootstrap: Option<PathBuf>,
    /// Where to write the zip.
    #[arg(long, default_value = "function.zip")]
    out: PathBuf,
}

/// One file of the package.
struct Entry {
    name: String,
    source: PathBuf,
    mode: u32,
    size: u64,
    note: String,
}

pub async fn run(args: PackageArgs) -> Result<()> {
    debug_assert!(args.lambda);
    let component = match &args.function {
        Some(path) => path.clone(),
        None => crate::commands::dev::build_component(&args.dir).await?,
    };
    let mut entries = Vec::new();

    // bootstrap: a Linux executable Lambda can start on Amazon Linux 2023.
    let bootstrap = match &args.bootstrap {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("finding this helixflow binary")?,
    };
    let elf = elf_info(&bootstrap).map_err(|e| {
        anyhow!(
            "{}: {e}; Lambda needs a Linux (x86_64 or arm64) build of helixflow as `bootstrap`: pass one with --bootstrap",
            bootstrap.display()
        )
    })?;
    if let Some(glibc) = elf.glibc
        && glibc > AL2023_GLIBC
    {
        bail!(
            "{} needs glibc {}.{}, but provided.al2023 has {}.{}: build helixflow on Amazon Linux 2023 or for an older glibc (e.g. `cargo zigbuild --target {}-unknown-linux-gnu.2.34`), then pass it with --bootstrap",
            bootstrap.display(),
            glibc.0,
            glibc.1,
            AL2023_GLIBC.0,
            AL2023_GLIBC.1,
            if elf.arch == "arm64" {
                "aarch64"
            } else {
                "x86_64"
            },
        );
    }
    entries.push(Entry {
        name: "bootstrap".into(),
        size: file_size(&bootstrap)?,
        source: bootstrap,
        mode: 0o755,
        note: match elf.glibc {
            Some((a, b)) => format!("helixflow, Linux {}, glibc {a}.{b}", elf.arch),
            None => format!("helixflow, Linux {}", elf.arch),
        },
    });

    // function.wasm: loaded here by the same runtime that will run it.
    let bytes = std::fs::read(&component).map_err(|e| {
        anyhow!(
            "cannot read the component {}: {e} (build it first, or give its path with --function)",
            component.display()
        )
    })?;
    let exports = check_component(&bytes)
        .await
        .with_context(|| format!("{} cannot run in Lambda", component.display()))?;
    entries.push(Entry {
        name: "function.wasm".into(),
        size: bytes.len() as u64,
        source: component,
        mode: 0o644,
        note: exports,
    });

    // models/NAME.onnx
    let mut names = std::collections::HashSet::new();
    for spec in &args.models {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--model {spec:?}: use NAME=PATH.onnx"))?;
        if !valid_model_name(name) {
            bail!(
                "--model {spec:?}: {name:?} is not a model name (letters, digits, '-', '_', '.'; starting with a letter or digit)"
            );
        }
        if !names.insert(name.to_string()) {
            bail!("--model {name}: given twice");
        }
        let path = PathBuf::from(path);
        let size = file_size(&path).with_context(|| format!("--model {name}"))?;
        if size == 0 {
            bail!("--model {name}: {} is empty", path.display());
        }
        entries.push(Entry {
            name: format!("models/{name}.onnx"),
            source: path,
            mode: 0o644,
            size,
            note: format!("wasi:nn model {name:?}"),
        });
    }

    // lib/libonnxruntime.so
    if args.with_onnxruntime {
        let ort = std::env::var_os("ORT_DYLIB_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow!(
                    "--with-onnxruntime packs the library ORT_DYLIB_PATH names, and ORT_DYLIB_PATH is not set: point it at libonnxruntime.so (Linux, {})",
                    elf.arch
                )
            })?;
        let lib = elf_info(&ort).with_context(|| {
            format!(
                "ORT_DYLIB_PATH={}: not an ONNX Runtime library for Linux",
                ort.display()
            )
        })?;
        if lib.arch != elf.arch {
            bail!(
                "ORT_DYLIB_PATH={} is for {}, the bootstrap for {}: use the ONNX Runtime build for {}",
                ort.display(),
                lib.arch,
                elf.arch,
                elf.arch
            );
        }
        entries.push(Entry {
            name: PACKAGED_ORT.into(),
            size: file_size(&ort)?,
            source: ort,
            mode: 0o755,
            note: "ONNX Runtime".into(),
        });
    } else if !args.models.is_empty() {
        eprintln!(
            "warning: the package has models but no ONNX Runtime: add --with-onnxruntime, or set ORT_DYLIB_PATH in the function's configuration (e.g. to a layer's library under /opt)"
        );
    }

    let unzipped: u64 = entries.iter().map(|e| e.size).sum();
    if unzipped > MAX_UNZIPPED {
        let biggest = entries.iter().max_by_key(|e| e.size).map(|e| &e.name);
        bail!(
            "the package would unzip to {} ({}), past Lambda's limit of 250 MiB for a function's code: {}",
            human(unzipped),
            entries
                .iter()
                .map(|e| format!("{} {}", e.name, human(e.size)))
                .collect::<Vec<_>>()
                .join(", "),
            if biggest.is_some_and(|n| n == "bootstrap") {
                "ship a release build, or strip its debug information (`objcopy --strip-debug helixflow bootstrap-helixflow`) and pass it with --bootstrap"
            } else {
                "ship fewer or smaller models"
            }
        );
    }

    write_zip(&args.out, &entries)?;
    let zipped = file_size(&args.out)?;
    println!(
        "{}: {} ({} unzipped), for provided.al2023 on {}",
        args.out.display(),
        human(zipped),
        human(unzipped),
        elf.arch
    );
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
    for e in &entries {
        println!(
            "  {:width$}  {:>9}  {:o}  {}",
            e.name,
            human(e.size),
            e.mode,
            e.note
        );
    }
    if zipped > MAX_DIRECT_UPLOAD {
        eprintln!(
            "note: {} is over Lambda's 50 MiB limit for a direct upload: put it in S3 and create the function with `--code S3Bucket=...,S3Key=...`",
            args.out.display()
        );
    }
    println!(
        "create it with: aws lambda create-function --function-name NAME --runtime provided.al2023 --handler bootstrap --architectures {} --role ROLE_ARN --zip-file fileb://{}",
        elf.arch,
        args.out.display()
    );
    Ok(())
}

/// Loads the component with this binary's runtime (what `helixflow lambda` does at
/// cold start) and names the handlers it exports.
async fn check_component(bytes: &[u8]) -> Result<String> {
    let runtime = helixflow_runtime::Runtime::new(helixflow_runtime::RuntimeConfig {
        max_instances: 1,
        ..Default::default()
    })?;
    let sha = {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(bytes);
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let func = runtime.load(&sha, bytes).await?;
    let exports = func.exports();
    Ok(match (exports.http, exports.event) {
        (true, true) => "component: HTTP and event handlers",
        (true, false) => "component: HTTP handler (API Gateway / function URL events)",
        _ => "component: event handler",
    }
    .into())
}

/// The rule of `helixflow_nn::dir_source` for model names (what `load_by_name` finds).
fn valid_model_name(name: &str) -> bool {
    name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.contains("..")
}

fn file_size(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        bail!("{}: not a file", path.display());
    }
    Ok(meta.len())
}

/// Writes the zip next to `out` and renames it into place: no half-written package.
fn write_zip(out: &Path, entries: &[Entry]) -> Result<()> {
    let partial = out.with_extension("zip.partial");
    let result = (|| -> Result<()> {
        let file = File::create(&partial)
            .map_err(|e| anyhow!("cannot write {}: {e}", partial.display()))?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
        for e in entries {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .last_modified_time(zip::DateTime::default())
                .unix_permissions(e.mode)
                .large_file(e.size >= u32::MAX as u64);
            zip.start_file(e.name.as_str(), options)?;
            let mut src =
                File::open(&e.source).map_err(|err| anyhow!("{}: {err}", e.source.display()))?;
            std::io::copy(&mut src, &mut zip)
                .with_context(|| format!("adding {}", e.source.display()))?;
        }
        zip.finish()?.flush()?;
        std::fs::rename(&partial, out)
            .map_err(|e| anyhow!("cannot write {}: {e}", out.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// What Lambda needs to know about an executable or shared library.
struct ElfInfo {
    /// Lambda's name for the architecture: `x86_64` or `arm64`.
    arch: &'static str,
    /// The newest `GLIBC_2.x` symbol version it needs (`None`: none, e.g. static musl).
    glibc: Option<(u32, u32)>,
}

/// Reads the ELF header and the dynamic string table (where the needed symbol
/// versions are named).
fn elf_info(path: &Path) -> Result<ElfInfo> {
    let f = File::open(path).map_err(|e| anyhow!("{e}"))?;
    let mut h = [0u8; 64];
    if f.read_exact_at(&mut h, 0).is_err() || &h[..4] != b"\x7fELF" {
        bail!("not a Linux executable (ELF)");
    }
    if h[4] != 2 || h[5] != 1 {
        bail!("not a 64-bit little-endian ELF file");
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let arch = match u16_at(&h, 18) {
        0x3e => "x86_64",
        0xb7 => "arm64",
        m => bail!("built for ELF machine {m:#x}, not x86_64 or arm64"),
    };
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(&h, 0x28),
        u16_at(&h, 0x3a) as usize,
        u16_at(&h, 0x3c) as usize,
        u16_at(&h, 0x3e) as usize,
    );
    let mut info = ElfInfo { arch, glibc: None };
    if shoff == 0 || shentsize < 0x28 || shnum == 0 || shstrndx >= shnum {
        return Ok(info); // no section headers: nothing more to learn
    }
    if shentsize * shnum > 16 << 20 {
        bail!("{shnum} section headers of {shentsize} bytes: not a plausible executable");
    }
    let mut sh = vec![0u8; shentsize * shnum];
    f.read_exact_at(&mut sh, shoff)
        .map_err(|e| anyhow!("truncated section headers: {e}"))?;
    let section = |i: usize| -> Result<Vec<u8>> {
        let s = &sh[i * shentsize..];
        let (offset, size) = (u64_at(s, 0x18), u64_at(s, 0x20));
        if size > 64 << 20 {
            bail!("a section of {size} bytes");
        }
        let mut buf = vec![0u8; size as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| anyhow!("truncated section: {e}"))?;
        Ok(buf)
    };
    let names = section(shstrndx)?;
    let dynstr = (0..shnum).find(|&i| {
        let at = u32_at(&sh[i * shentsize..], 0) as usize;
        names.get(at..).is_some_and(|n| n.starts_with(b".dynstr\0"))
    });
    if let Some(i) = dynstr {
        info.glibc = section(i)?
            .split(|&b| b == 0)
            .filter_map(|s| std::str::from_utf8(s).ok()?.strip_prefix("GLIBC_"))
            .filter_map(|v| {
                let (major, minor) = v.split_once('.')?;
                let minor = minor.split('.').next()?;
                Some((major.parse().ok()?, minor.parse().ok()?))
            })
            .max();
    }
    Ok(info)
}

/// Sizes as people read them (decimal units, like Lambda's limits).
fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}
