//! `helixflow package --lambda` end to end: the zips it writes are created as
//! `provided.al2023` functions in ministack's Lambda (the bootstrap runs as a local
//! process behind the real Invoke API) and invoked with boto3
//! (tests/python/lambda_package.py): HTTP and plain events, sync, Event and DryRun,
//! function errors and faults, and wasi:nn with the model and ONNX Runtime in the
//! package. Bad input is refused before anything is written.
//!
//! Each test starts its own ministack with a bare environment, as Lambda gives a
//! bootstrap (the test command's ministack would hand its own environment, e.g.
//! `ORT_DYLIB_PATH`, to every bootstrap it starts).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A ministack (Lambda, SQS, CloudWatch Logs, ...) on a loopback port, in its own
/// process group: dropping it kills it and the bootstraps it started.
struct Ministack {
    url: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Ministack {
    fn start(dir: &Path) -> Ministack {
        use std::os::unix::process::CommandExt as _;
        let python = helixflow_e2e::required_env("HELIXFLOW_AWS_PYTHON");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = dir.join("ministack");
        std::fs::create_dir_all(&home).unwrap();
        let log = dir.join("ministack.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(python)
            .args(["-m", "ministack"])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("TMPDIR", &home)
            .env("GATEWAY_PORT", port.to_string())
            .env("BIND_HOST", "127.0.0.1")
            .env("LOG_LEVEL", "WARNING")
            .env("LAMBDA_EXECUTOR", "local")
            // No listeners besides the gateway (parallel tests would fight over them).
            .env("IOT_MTLS_ENABLED", "0")
            .env("SFTP_ENABLED", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start ministack");
        let mut m = Ministack {
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        let health = format!("{}/_ministack/health", m.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", &health])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return m;
            }
            assert!(
                m.child.try_wait().unwrap().is_none() && Instant::now() < deadline,
                "ministack did not start:\n{}",
                m.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ministack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// The helixflow binary for `bootstrap`: the test build without its debug information
/// (with it, it is past Lambda's 250 MiB limit, which `package` refuses).
fn bootstrap(dir: &Path) -> PathBuf {
    let out = dir.join("helixflow-stripped");
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(helixflow_e2e::helixflow_bin())
        .arg(&out)
        .status()
        .expect("objcopy (binutils) is missing: `apt-get install binutils`");
    assert!(status.success(), "objcopy --strip-debug failed");
    out
}

/// `helixflow package --lambda ARGS` in `dir`: (success, stdout, stderr).
fn package(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(helixflow_e2e::helixflow_bin())
        .args(["package", "--lambda"])
        .args(args)
        .current_dir(dir)
        .env_remove("ORT_DYLIB_PATH")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `guest` to the dir, packages it (plus `extra` arguments) into
/// `{name}.zip`, checks what the command printed, and returns the zip's path.
fn package_guest(
    dir: &Path,
    name: &str,
    guest: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    let wasm = dir.join(format!("{name}.wasm"));
    std::fs::write(&wasm, helixflow_e2e::guest(guest)).unwrap();
    let zip = dir.join(format!("{name}.zip"));
    let boot = bootstrap(dir);
    let started = Instant::now();
    let mut args = vec![
        "--function",
        wasm.to_str().unwrap(),
        "--bootstrap",
        boot.to_str().unwrap(),
        "--out",
        zip.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = package(dir, &args, env);
    println!(
        "package {name} ({:.1?}):\n{stdout}{stderr}",
        started.elapsed()
    );
    assert!(ok, "package failed:\n{stdout}\n{stderr}");
    let size = std::fs::metadata(&zip).unwrap().len();
    assert!(
        stdout.contains(&format!("{}: ", zip.display()))
            && stdout.contains("bootstrap")
            && stdout.contains("function.wasm")
            && stdout.contains("for provided.al2023 on x86_64"),
        "the command names the zip, its entries and the architecture:\n{stdout}"
    );
    assert!(size > 1_000_000, "a zip of {size} bytes");
    zip
}

/// Runs tests/python/lambda_package.py SCENARIO against `ministack`.
fn run_scenario(ministack: &Ministack, scenario: &str, zip: &Path) {
    let python = helixflow_e2e::required_env("HELIXFLOW_AWS_PYTHON");
    let script = helixflow_e2e::workspace_root().join("tests/python/lambda_package.py");
    let out = Command::new(python)
        .arg(script)
        .args([scenario, zip.to_str().unwrap(), "x86_64"])
        .env("MINISTACK_URL", &ministack.url)
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{scenario} failed:\n{stdout}\n{}\nministack log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        ministack.log()
    );
}

#[test]
fn lambda_package_http_and_event_functions_run_in_ministacks_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let hello = package_guest(dir.path(), "hello", "hello", &[], &[]);
    let echo = package_guest(dir.path(), "echo", "echo-event", &[], &[]);
    // The same inputs give the same zip (Lambda's CodeSha256 does not change).
    let again = package_guest(dir.path(), "hello-again", "hello", &[], &[]);
    assert_eq!(
        std::fs::read(&hello).unwrap(),
        std::fs::read(&again).unwrap(),
        "packaging is reproducible"
    );
    let ministack = Ministack::start(dir.path());
    run_scenario(&ministack, "hello", &hello);
    run_scenario(&ministack, "echo", &echo);
}

#[test]
fn lambda_package_faults_and_event_invocations_in_ministacks_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let chaos = package_guest(dir.path(), "chaos", "chaos", &[], &[]);
    let ministack = Ministack::start(dir.path());
    run_scenario(&ministack, "chaos", &chaos);
}

/// wasi:nn in Lambda with nothing but the package: the model under `models/` and
/// ONNX Runtime under `lib/` (the bootstrap's environment has no `ORT_DYLIB_PATH`).
#[test]
fn lambda_package_with_a_model_and_onnx_runtime_serves_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let models = helixflow_e2e::required_env("HELIXFLOW_MODELS_DIR");
    let ort = helixflow_e2e::required_env("ORT_DYLIB_PATH");
    let model = format!("all-minilm-l6-v2={models}/minilm-int8.onnx");
    let zip = package_guest(
        dir.path(),
        "embed",
        "embed-minilm",
        &["--model", &model, "--with-onnxruntime"],
        &[("ORT_DYLIB_PATH", &ort)],
    );
    let ministack = Ministack::start(dir.path());
    run_scenario(&ministack, "embed", &zip);
}

#[test]
fn lambda_package_refuses_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let boot = bootstrap(d);
    let boot = boot.to_str().unwrap();
    std::fs::write(d.join("hello.wasm"), helixflow_e2e::guest("hello")).unwrap();
    // A core module (magic + version 1), not a component.
    std::fs::write(d.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(d.join("notes.txt"), b"not wasm at all").unwrap();
    std::fs::write(d.join("model.onnx"), b"\x08\x07").unwrap();
    // A model as large as Lambda's whole limit (sparse: no disk used).
    std::fs::File::create(d.join("huge.onnx"))
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    /// (arguments, environment, what the error says).
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &["--function", "missing.wasm"],
            &[],
            &["missing.wasm", "cannot read the component"],
        ),
        (
            &["--function", "core.wasm"],
            &[],
            &["`_start`", "wasm32-wasip2"],
        ),
        (
            &["--function", "notes.txt"],
            &[],
            &["not a WebAssembly component", "magic"],
        ),
        (
            &["--function", "hello.wasm", "--model", "m=absent.onnx"],
            &[],
            &["--model m", "absent.onnx"],
        ),
        (
            &[
                "--function",
                "hello.wasm",
                "--model",
                "../escape=model.onnx",
            ],
            &[],
            &["not a model name"],
        ),
        (
            &["--function", "hello.wasm", "--model", "model.onnx"],
            &[],
            &["NAME=PATH.onnx"],
        ),
        (
            &["--function", "hello.wasm", "--with-onnxruntime"],
            &[],
            &["ORT_DYLIB_PATH is not set"],
        ),
        (
            &["--function", "hello.wasm", "--with-onnxruntime"],
            &[("ORT_DYLIB_PATH", "model.onnx")],
            &["not an ONNX Runtime library", "not a Linux executable"],
        ),
        (
            &["--function", "hello.wasm", "--bootstrap", "hello.wasm"],
            &[],
            &["not a Linux executable", "--bootstrap"],
        ),
        (
            &["--function", "hello.wasm", "--model", "big=huge.onnx"],
            &[],
            &["past Lambda's limit of 250 MiB", "models/big.onnx 314.6 MB"],
        ),
    ];
    for (args, env, expected) in cases {
        let mut all = args.to_vec();
        if !args.contains(&"--bootstrap") {
            all.extend(["--bootstrap", boot]);
        }
        let (ok, stdout, stderr) = package(d, &all, env);
        println!("{args:?} -> {}", stderr.trim());
        assert!(!ok, "{args:?} succeeded:\n{stdout}");
        for e in *expected {
            assert!(stderr.contains(e), "{args:?}: {e:?} not in:\n{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !d.join("function.zip").exists() && !d.join("function.zip.partial").exists(),
            "{args:?} left a zip behind"
        );
    }
    // --lambda is required (the only target today), and --function and --dir exclude
    // each other.
    let out = Command::new(helixflow_e2e::helixflow_bin())
        .args(["package", "--function", "hello.wasm"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--lambda"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, _, stderr) = package(d, &["--function", "hello.wasm", "--dir", "."], &[]);
    assert!(!ok && stderr.contains("cannot be used with"), "{stderr}");
    // --dir without a project: what to do instead.
    let (ok, _, stderr) = package(d, &["--dir", ".", "--bootstrap", boot], &[]);
    assert!(!ok && stderr.contains("no Cargo.toml"), "{stderr}");
    // Models without ONNX Runtime: packaged, with a warning saying how to add it.
    let (ok, stdout, stderr) = package(
        d,
        &[
            "--function",
            "hello.wasm",
            "--bootstrap",
            boot,
            "--model",
            "tiny=model.onnx",
        ],
        &[],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("--with-onnxruntime"), "{stderr}");
    assert!(stdout.contains("models/tiny.onnx"), "{stdout}");
}
