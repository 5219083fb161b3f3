//! Security hardening (issue 13): attack tests.
//!
//! Integrity of what a node keeps on disk (the compile cache of native code), and
//! model uploads that cannot run the node out of memory.

use bytes::Bytes;
use helixflow_e2e::{Api, Node, admin_key, required_env};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every file named `{sha}.cwasm` under the node's compile cache.
fn cached_cwasm(data_dir: &Path, sha: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for engine in std::fs::read_dir(data_dir.join("compiled"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = engine.path().join(format!("{sha}.cwasm"));
        if p.is_file() {
            found.push(p);
        }
    }
    found
}

/// Item 8: a compiled component in the cache is native code the node maps executable.
/// A byte flipped in it (by anyone who can write the cache directory) must not be
/// loaded: the node refuses it (MAC), says so, recompiles from the verified artifact and
/// rewrites the entry, which later starts load again without compiling.
#[tokio::test(flavor = "multi_thread")]
async fn tampered_compile_cache_entry_is_refused_recompiled_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let sha = {
        let node = Node::start(dir.path(), None);
        let api = Api::new(&node);
        api.create_tenant("acme").await;
        let r = api
            .deploy_raw(
                "acme",
                "hello",
                helixflow_e2e::guest("hello"),
                "?alias=live",
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(
            api.http.get(&api.url("/acme/hello/x?name=A")).await.text(),
            "Hello, A! (GET /x)\n"
        );
        node.kill9();
        r.json()["version"]["sha256"].as_str().unwrap().to_string()
    };
    let files = cached_cwasm(dir.path(), &sha);
    assert_eq!(
        files.len(),
        1,
        "one compile-cache entry for {sha}: {files:?}"
    );
    let path = &files[0];
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
    let flipped = bytes;

    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    let r = api.http.get(&api.url("/acme/hello/y?name=B")).await;
    assert_eq!(
        r.text(),
        "Hello, B! (GET /y)\n",
        "status {}; log:\n{}",
        r.status,
        node.log()
    );
    let log = node.log();
    let warning = log
        .lines()
        .find(|l| l.contains("compile-cache entry failed authentication"))
        .unwrap_or_else(|| panic!("no warning about the tampered entry; log:\n{log}"));
    assert!(
        warning.contains("WARN")
            && warning.contains(&sha)
            && warning.contains(&path.display().to_string()),
        "{warning}"
    );
    assert!(
        log.contains("compiled component"),
        "recompiled from the artifact"
    );
    let rewritten = std::fs::read(path).expect("the entry was rewritten");
    assert_ne!(rewritten, flipped);
    assert!(
        rewritten.ends_with(b"HFCWMAC1"),
        "the rewritten entry carries a MAC"
    );
    node.kill9();

    // The rewritten entry verifies: the next start loads it without compiling.
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    assert_eq!(
        api.http.get(&api.url("/acme/hello/z?name=C")).await.text(),
        "Hello, C! (GET /z)\n"
    );
    let log = node.log();
    assert!(
        !log.contains("compiled component") && !log.contains("failed authentication"),
        "{log}"
    );
    println!(
        "tampered entry {} ({} bytes, byte {mid} flipped): refused, recompiled, rewritten",
        path.display(),
        flipped.len()
    );
}

/// Writes a real ONNX model of exactly `total` bytes, almost all of it one float32
/// initializer `W` [rows, 256] (raw_data, streamed: the generator holds 1 MiB), read by
/// `y = Gather(W, idx)`. Prints `{"sha256", "size", "rows"}`.
const GEN_MODEL: &str = r#"
import sys, os, json, hashlib
from onnx import helper, TensorProto
path, total = sys.argv[1], int(sys.argv[2])
COLS = 256
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f; n >>= 7
        if n: out.append(b | 0x80)
        else: out.append(b); return bytes(out)
def key(field, wt): return varint(field << 3 | wt)
def parts(rows, pad):
    idx = helper.make_tensor_value_info("idx", TensorProto.INT64, [None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, COLS])
    g = helper.make_graph([helper.make_node("Gather", ["W", "idx"], ["y"], axis=0)], "big", [idx], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], doc_string="p" * pad)
    m.ir_version = 8
    head = m.SerializeToString()
    nbytes = rows * COLS * 4
    t = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[rows, COLS]).SerializeToString()
    t += key(9, 2) + varint(nbytes)
    tensor = key(5, 2) + varint(len(t) + nbytes) + t
    graph = key(7, 2) + varint(len(tensor) + nbytes) + tensor
    return head + graph, nbytes
rows = (total - 4096) // (COLS * 4)
pad = 0
for _ in range(8):
    prefix, nbytes = parts(rows, pad)
    pad += total - (len(prefix) + nbytes)
prefix, nbytes = parts(rows, pad)
assert len(prefix) + nbytes == total, (len(prefix), nbytes, total)
block = os.urandom(1 << 20)
h = hashlib.sha256()
with open(path, "wb") as f:
    f.write(prefix); h.update(prefix)
    left = nbytes
    while left:
        b = block[:min(left, len(block))]
        f.write(b); h.update(b); left -= len(b)
print(json.dumps({"sha256": h.hexdigest(), "size": total, "rows": rows}))
"#;

fn python() -> std::process::Command {
    std::process::Command::new(required_env("HELIXFLOW_NN_PYTHON"))
}

fn gen_model(dir: &Path, total: u64) -> (PathBuf, serde_json::Value) {
    let script = dir.join("gen_model.py");
    std::fs::write(&script, GEN_MODEL).unwrap();
    let path = dir.join("big.onnx");
    let out = python()
        .arg(&script)
        .arg(&path)
        .arg(total.to_string())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "generating the model: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        path,
        serde_json::from_slice(&out.stdout).expect("generator output"),
    )
}

fn vm_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb << 10)
        .unwrap_or(0)
}

type FileBody = http_body_util::StreamBody<
    futures::stream::BoxStream<'static, Result<hyper::body::Frame<Bytes>, std::io::Error>>,
>;

/// A request body that reads `path` in 1 MiB chunks as hyper sends it (the test process
/// never holds the file either).
fn file_body(path: &Path) -> FileBody {
    use futures::StreamExt;
    use tokio::io::AsyncReadExt;
    let path = path.to_path_buf();
    let stream = futures::stream::unfold(None::<tokio::fs::File>, move |f| {
        let path = path.clone();
        async move {
            let mut f = match f {
                Some(f) => f,
                None => match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) => return Some((Err(e), None)),
                },
            };
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(hyper::body::Frame::data(Bytes::from(buf))), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    http_body_util::StreamBody::new(stream.boxed())
}

/// POSTs `body` to the node's model route for `acme/{name}`; returns (status, JSON body).
async fn push_stream(
    node: &Node,
    name: &str,
    body: FileBody,
    content_length: Option<u64>,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, FileBody>(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "{}/api/v1/tenants/acme/models/{name}/versions",
            node.url
        ))
        .header("authorization", format!("Bearer {}", admin_key()));
    if let Some(n) = content_length {
        req = req.header("content-length", n.to_string());
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(300),
        client.request(req.body(body).unwrap()),
    )
    .await
    .expect("upload timed out")
    .expect("upload request");
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::json!({"raw": String::from_utf8_lossy(&bytes)})),
    )
}

fn dir_entries(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Item 10: a model upload of the full default limit (1 GiB, a real ONNX file ORT
/// validates) streams to disk and is validated without loading its weights into
/// memory: the node's resident memory stays under 200 MB above idle the whole time.
/// Before, the body was buffered whole and ORT parsed it from memory (~+3 GiB).
#[tokio::test(flavor = "multi_thread")]
async fn a_1_gib_model_upload_keeps_the_node_rss_under_200_mb_above_idle() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (model, info) = gen_model(dir.path(), 1 << 30);
    let generated = started.elapsed();
    let data_dir = dir.path().join("node");
    let node = Node::start(&data_dir, None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = node.pid();
    let idle = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            vm_rss_bytes(pid)
        })
        .max()
        .unwrap();
    assert!(idle > 0, "VmRSS of the node");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut peak, mut samples) = (0u64, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(vm_rss_bytes(pid));
                samples += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (peak, samples)
        })
    };
    let upload_started = std::time::Instant::now();
    let (status, body) = push_stream(&node, "huge", file_body(&model), Some(1 << 30)).await;
    let upload_time = upload_started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak, samples) = sampler.join().unwrap();
    assert_eq!(status, 201, "{body}; log:\n{}", node.log());
    let sha = info["sha256"].as_str().unwrap();
    assert_eq!(body["version"]["sha256"], sha);
    assert_eq!(body["version"]["size"], 1u64 << 30);

    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "1 GiB model upload: idle VmRSS {:.1} MiB, peak {:.1} MiB (+{:.1} MiB, {samples} samples every 50 ms); generated in {:.1} s, uploaded + validated + stored in {:.1} s",
        mb(idle),
        mb(peak),
        mb(peak.saturating_sub(idle)),
        generated.as_secs_f64(),
        upload_time.as_secs_f64()
    );
    assert!(samples >= 5, "the sampler ran during the upload");
    assert!(peak >= idle / 2, "sampled the live process");
    assert!(
        peak.saturating_sub(idle) < 200 << 20,
        "peak VmRSS {:.1} MiB is {:.1} MiB above idle {:.1} MiB (limit 200 MB)",
        mb(peak),
        mb(peak - idle),
        mb(idle)
    );

    // Stored whole under its SHA-256; the spool directory is empty again.
    let stored = data_dir.join("artifacts/sha256").join(sha);
    assert_eq!(
        std::fs::metadata(&stored).map(|m| m.len()).unwrap_or(0),
        1 << 30,
        "{}",
        stored.display()
    );
    assert_eq!(
        dir_entries(&data_dir.join("uploads")),
        Vec::<String>::new(),
        "upload temp files removed"
    );
    let log = node.log();
    assert!(log.contains("model pushed"), "{log}");
    assert!(
        !log.contains("no skeleton"),
        "validated through the skeleton: {log}"
    );
}

/// Item 10, the limits of the streaming path: a body without a declared length that goes
/// past `max_model_mb` is cut off with 413 and leaves no file behind; a model whose
/// weights point at an external file (here one of the host's) is refused, not loaded.
#[tokio::test(flavor = "multi_thread")]
async fn streamed_uploads_are_capped_and_external_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let node = Node::start(&data_dir, Some("[limits]\nmax_model_mb = 1\n"));
    let api = Api::new(&node);
    api.create_tenant("acme").await;

    // 4 MiB, chunked (no Content-Length to check first): refused once past 1 MiB.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = node.url.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/tenants/acme/models/toolarge/versions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\n\r\n",
            admin_key()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![7u8; 256 << 10];
        for _ in 0..16 {
            if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await
                .is_err()
                || s.write_all(&chunk).await.is_err()
                || s.write_all(b"\r\n").await.is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(text.contains("payload_too_large"), "{text}");
    }
    assert_eq!(
        dir_entries(&data_dir.join("uploads")),
        Vec::<String>::new(),
        "nothing left in the spool"
    );
    assert_eq!(
        dir_entries(&data_dir.join("artifacts/sha256")),
        Vec::<String>::new(),
        "nothing stored"
    );

    // A small model whose initializer says "my bytes are in /etc/hostname".
    let script = r#"
import sys
from onnx import helper, TensorProto
t = TensorProto(name="W", data_type=TensorProto.UINT8, dims=[4]); t.data_location = TensorProto.EXTERNAL
for k, v in (("location", "/etc/hostname"), ("offset", "0"), ("length", "4")):
    e = t.external_data.add(); e.key = k; e.value = v
idx = helper.make_tensor_value_info("idx", TensorProto.INT64, [None])
y = helper.make_tensor_value_info("y", TensorProto.UINT8, [None])
g = helper.make_graph([helper.make_node("Gather", ["W", "idx"], ["y"])], "g", [idx], [y], initializer=[t])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
open(sys.argv[1], "wb").write(m.SerializeToString())
"#;
    let evil = dir.path().join("external.onnx");
    let out = python().arg("-c").arg(script).arg(&evil).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let len = std::fs::metadata(&evil).unwrap().len();
    let (status, body) = push_stream(&node, "external", file_body(&evil), Some(len)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_model", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("external data"),
        "{body}"
    );
    assert_eq!(dir_entries(&data_dir.join("uploads")), Vec::<String>::new());
    assert_eq!(
        dir_entries(&data_dir.join("artifacts/sha256")),
        Vec::<String>::new(),
        "nothing stored"
    );
}
