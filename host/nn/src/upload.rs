//! Validating an uploaded model file without holding it in memory.
//!
//! ONNX Runtime parses a model file into one protobuf message and then copies its
//! initializers out: a model of N bytes costs about 2N of memory to load (measured with
//! ORT 1.31 on a 1 GiB single-initializer model: +2.0 GiB peak RSS). Proving that an
//! upload loads needs the graph and the certainty that every weight is where the graph
//! says, not the weights in memory. So [`Inference::validate_file`] has ORT load a
//! *skeleton*: a copy of the model file in which every large initializer's `raw_data`
//! is replaced by an ONNX external-data reference to the same byte range of the
//! uploaded file itself. ORT maps those ranges instead of copying them, and with
//! pre-packing off it does not touch them while it builds the session (measured: +8 MB
//! for the same model). The session is built from the upload's exact graph and exact
//! weight bytes; it is dropped after reading the model's signature.
//!
//! A file the skeleton cannot be made of (not an ONNX protobuf this reader follows, or
//! more than [`MAX_SKELETON_BYTES`] besides initializer data, e.g. weights stored in
//! `Constant` nodes) is loaded by ORT as it is, at the full memory cost.
//!
//! **Invariant**: an upload whose initializers reference external data is refused: a
//! registry model is one self-contained file, and an external reference would have ORT
//! read other files of the host.

use crate::{ErrorCode, Inference, IoSpec, NnError};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// `raw_data` of at least this many bytes is referenced, not copied, in the skeleton
/// (the `onnx` package's own default threshold for external data).
const MIN_EXTERNAL_BYTES: u64 = 1024;
/// Most bytes of a skeleton (everything but the referenced weights).
pub const MAX_SKELETON_BYTES: u64 = 64 << 20;

// Protobuf field numbers (onnx.proto3).
const MODEL_GRAPH: u64 = 7;
const GRAPH_INITIALIZER: u64 = 5;
const TENSOR_RAW_DATA: u64 = 9;
const TENSOR_EXTERNAL_DATA: u64 = 13;
const TENSOR_DATA_LOCATION: u64 = 14;
const DATA_LOCATION_EXTERNAL: u64 = 1;
const WIRE_VARINT: u64 = 0;
const WIRE_I64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_I32: u64 = 5;

/// Why no skeleton was made.
#[derive(Debug)]
pub(crate) enum SkeletonError {
    /// The upload's initializers already reference external data (refused).
    ExternalData,
    /// The file is not something this reader follows (ORT judges the file itself).
    Unsupported(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for SkeletonError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            SkeletonError::Unsupported("truncated protobuf".into())
        } else {
            SkeletonError::Io(e)
        }
    }
}

fn unsupported(why: &str) -> SkeletonError {
    SkeletonError::Unsupported(why.to_string())
}

/// A protobuf reader over the model file that knows its position.
struct Reader {
    r: BufReader<std::fs::File>,
    pos: u64,
    /// Bytes the skeleton may still take.
    budget: u64,
}

impl Reader {
    fn at_eof(&mut self) -> Result<bool, SkeletonError> {
        Ok(self.r.fill_buf()?.is_empty())
    }

    fn byte(&mut self) -> Result<u8, SkeletonError> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    fn varint(&mut self) -> Result<u64, SkeletonError> {
        let mut v = 0u64;
        for shift in (0u32..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(unsupported("varint longer than 10 bytes"))
    }

    /// A length that must fit in what is left of the enclosing message (`end`).
    fn length(&mut self, end: u64) -> Result<u64, SkeletonError> {
        let n = self.varint()?;
        if n > end.saturating_sub(self.pos) {
            return Err(unsupported("a length runs past its message"));
        }
        Ok(n)
    }

    fn take(&mut self, n: u64) -> Result<(), SkeletonError> {
        if n > self.budget {
            return Err(SkeletonError::Unsupported(format!(
                "more than {MAX_SKELETON_BYTES} bytes besides initializer data"
            )));
        }
        self.budget -= n;
        Ok(())
    }

    /// Copy `n` bytes into `out` (counted against the budget).
    fn copy(&mut self, n: u64, out: &mut Vec<u8>) -> Result<(), SkeletonError> {
        self.take(n)?;
        let start = out.len();
        out.resize(start + n as usize, 0);
        self.r.read_exact(&mut out[start..])?;
        self.pos += n;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<(), SkeletonError> {
        let n_i64 = i64::try_from(n).map_err(|_| unsupported("field too long"))?;
        self.r.seek_relative(n_i64)?;
        self.pos += n;
        Ok(())
    }

    /// Copy one field whose key was just read, verbatim.
    fn copy_field(
        &mut self,
        field: u64,
        wire: u64,
        end: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), SkeletonError> {
        self.take(12)?;
        put_key(out, field, wire);
        match wire {
            WIRE_VARINT => {
                let v = self.varint()?;
                put_varint(out, v);
            }
            WIRE_I64 => self.copy(8, out)?,
            WIRE_I32 => self.copy(4, out)?,
            WIRE_LEN => {
                let n = self.length(end)?;
                put_varint(out, n);
                self.copy(n, out)?;
            }
            _ => return Err(unsupported("protobuf groups")),
        }
        Ok(())
    }

    fn key(&mut self) -> Result<(u64, u64), SkeletonError> {
        let k = self.varint()?;
        Ok((k >> 3, k & 7))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, (field << 3) | wire);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes to `skeleton` the model at `model` with each initializer's large `raw_data`
/// replaced by a reference (`location` = `model`'s file name, offset, length) to the same
/// bytes of `model`. `skeleton` must be in `model`'s directory. Returns how many
/// initializers are referenced.
pub(crate) fn write_skeleton(model: &Path, skeleton: &Path) -> Result<usize, SkeletonError> {
    let location = model
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| unsupported("model file name is not UTF-8"))?
        .to_string();
    let file = std::fs::File::open(model)?;
    let len = file.metadata()?.len();
    let mut rd = Reader {
        r: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        budget: MAX_SKELETON_BYTES,
    };
    let mut out = Vec::new();
    let mut referenced = 0;
    while !rd.at_eof()? {
        let (field, wire) = rd.key()?;
        if field == MODEL_GRAPH && wire == WIRE_LEN {
            let n = rd.length(len)?;
            let end = rd.pos + n;
            let graph = graph(&mut rd, end, &location, &mut referenced)?;
            put_bytes(&mut out, MODEL_GRAPH, &graph);
        } else {
            rd.copy_field(field, wire, len, &mut out)?;
        }
    }
    let mut f = std::fs::File::create(skeleton)?;
    f.write_all(&out)?;
    Ok(referenced)
}

fn graph(
    rd: &mut Reader,
    end: u64,
    location: &str,
    referenced: &mut usize,
) -> Result<Vec<u8>, SkeletonError> {
    let mut out = Vec::new();
    while rd.pos < end {
        let (field, wire) = rd.key()?;
        if field == GRAPH_INITIALIZER && wire == WIRE_LEN {
            let n = rd.length(end)?;
            let tensor_end = rd.pos + n;
            let t = tensor(rd, tensor_end, location, referenced)?;
            rd.take(12)?;
            put_bytes(&mut out, GRAPH_INITIALIZER, &t);
        } else {
            rd.copy_field(field, wire, end, &mut out)?;
        }
    }
    if rd.pos != end {
        return Err(unsupported("a graph field runs past the graph"));
    }
    Ok(out)
}

fn tensor(
    rd: &mut Reader,
    end: u64,
    location: &str,
    referenced: &mut usize,
) -> Result<Vec<u8>, SkeletonError> {
    let mut out = Vec::new();
    let mut raw: Option<(u64, u64)> = None;
    while rd.pos < end {
        let (field, wire) = rd.key()?;
        match (field, wire) {
            (TENSOR_RAW_DATA, WIRE_LEN) => {
                let n = rd.length(end)?;
                if raw.is_some() {
                    return Err(unsupported("raw_data given twice"));
                }
                if n >= MIN_EXTERNAL_BYTES {
                    raw = Some((rd.pos, n));
                    rd.skip(n)?;
                } else {
                    put_key(&mut out, TENSOR_RAW_DATA, WIRE_LEN);
                    put_varint(&mut out, n);
                    rd.copy(n, &mut out)?;
                }
            }
            (TENSOR_EXTERNAL_DATA, _) => return Err(SkeletonError::ExternalData),
            (TENSOR_DATA_LOCATION, WIRE_VARINT) => {
                let v = rd.varint()?;
                if v != 0 {
                    return Err(SkeletonError::ExternalData);
                }
            }
            _ => rd.copy_field(field, wire, end, &mut out)?,
        }
    }
    if rd.pos != end {
        return Err(unsupported("a tensor field runs past the tensor"));
    }
    if let Some((offset, length)) = raw {
        put_key(&mut out, TENSOR_DATA_LOCATION, WIRE_VARINT);
        put_varint(&mut out, DATA_LOCATION_EXTERNAL);
        for (k, v) in [
            ("location", location.to_string()),
            ("offset", offset.to_string()),
            ("length", length.to_string()),
        ] {
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, k.as_bytes());
            put_bytes(&mut entry, 2, v.as_bytes());
            rd.take(entry.len() as u64 + 12)?;
            put_bytes(&mut out, TENSOR_EXTERNAL_DATA, &entry);
        }
        *referenced += 1;
    }
    Ok(out)
}

/// Removes the skeleton file when validation is done, on every path.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A CPU session for validation only. Pre-packing is off: it copies (and so reads) the
/// weights of MatMul-like nodes, which a session that only proves the model loads does
/// not need.
fn validation_session(
    env: &ort::environment::Environment,
    model: &Path,
) -> Result<ort::session::Session, NnError> {
    let runtime = |e: String| NnError::new(ErrorCode::RuntimeError, e);
    let b = ort::session::Session::builder(env).map_err(|e| runtime(e.to_string()))?;
    let b = b
        .with_no_environment_execution_providers()
        .map_err(|e| runtime(e.to_string()))?;
    let mut b = b
        .with_config_entry("session.disable_prepacking", "1")
        .map_err(|e| runtime(e.to_string()))?;
    b.commit_from_file(model).map_err(|e| {
        NnError::new(
            ErrorCode::InvalidEncoding,
            format!("not a loadable ONNX model: {e}"),
        )
    })
}

fn validate_file_blocking(
    env: &ort::environment::Environment,
    model: &Path,
) -> Result<(Vec<IoSpec>, Vec<IoSpec>), NnError> {
    let size = std::fs::metadata(model)
        .map_err(|e| NnError::new(ErrorCode::RuntimeError, e.to_string()))?
        .len();
    if size < 2 {
        return Err(NnError::new(ErrorCode::InvalidEncoding, "model is empty"));
    }
    let name = model
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model");
    let skeleton = RemoveOnDrop(model.with_file_name(format!(".{name}.skeleton.onnx")));
    let session = match write_skeleton(model, &skeleton.0) {
        Ok(referenced) => {
            tracing::debug!(model = %model.display(), referenced, "validating through a skeleton");
            validation_session(env, &skeleton.0)?
        }
        Err(SkeletonError::ExternalData) => {
            return Err(NnError::new(
                ErrorCode::InvalidArgument,
                "the model references external data files; upload one self-contained .onnx file (onnx.save_model(..., save_as_external_data=False))",
            ));
        }
        Err(SkeletonError::Unsupported(why)) => {
            tracing::info!(model = %model.display(), size, reason = %why, "validating the model file as it is (no skeleton)");
            validation_session(env, model)?
        }
        Err(SkeletonError::Io(e)) => {
            return Err(NnError::new(
                ErrorCode::RuntimeError,
                format!("reading the model file: {e}"),
            ));
        }
    };
    Ok(crate::io_specs(&session))
}

impl Inference {
    /// Loads the ONNX file at `path` into a CPU session for validation only (not cached)
    /// and returns its signature; memory stays far below the file's size (see the module
    /// docs). The file's directory must be private to this upload: a skeleton is written
    /// next to it while ORT loads.
    pub async fn validate_file(&self, path: &Path) -> Result<(Vec<IoSpec>, Vec<IoSpec>), NnError> {
        let env = self.env.clone();
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || validate_file_blocking(&env, &path))
            .await
            .map_err(|e| NnError::new(ErrorCode::RuntimeError, e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TensorProto with `raw_data` of `n` bytes, as the `onnx` package writes it.
    fn tensor_bytes(name: &str, raw: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        put_key(&mut t, 1, WIRE_VARINT); // dims
        put_varint(&mut t, raw.len() as u64);
        put_key(&mut t, 2, WIRE_VARINT); // data_type = UINT8
        put_varint(&mut t, 2);
        put_bytes(&mut t, 8, name.as_bytes());
        put_bytes(&mut t, TENSOR_RAW_DATA, raw);
        t.extend_from_slice(extra);
        t
    }

    fn model_bytes(tensors: &[Vec<u8>]) -> Vec<u8> {
        let mut g = Vec::new();
        put_bytes(&mut g, 2, b"graph-name");
        for t in tensors {
            put_bytes(&mut g, GRAPH_INITIALIZER, t);
        }
        let mut m = Vec::new();
        put_key(&mut m, 1, WIRE_VARINT); // ir_version
        put_varint(&mut m, 8);
        put_bytes(&mut m, MODEL_GRAPH, &g);
        m
    }

    #[test]
    fn skeletons_reference_large_raw_data_in_place_and_copy_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let small = vec![9u8; 10];
        let file = model_bytes(&[
            tensor_bytes("big", &big, &[]),
            tensor_bytes("small", &small, &[]),
        ]);
        let model = dir.path().join("m.onnx");
        std::fs::write(&model, &file).unwrap();
        let skel = dir.path().join("s.onnx");
        assert_eq!(write_skeleton(&model, &skel).unwrap(), 1);
        let s = std::fs::read(&skel).unwrap();
        assert!(
            s.len() < 400,
            "the skeleton holds no large weights ({} bytes)",
            s.len()
        );
        // The reference names the upload and the exact range of the weights in it.
        let offset = file.windows(big.len()).position(|w| w == &big[..]).unwrap();
        let text = String::from_utf8_lossy(&s);
        assert!(
            text.contains("m.onnx") && text.contains(&offset.to_string()) && text.contains("5000"),
            "{text}"
        );
        assert!(
            s.windows(small.len()).any(|w| w == &small[..]),
            "small tensors stay inline"
        );
        assert!(text.contains("graph-name"));
    }

    #[test]
    fn external_data_in_uploads_is_refused_and_odd_files_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        let skel = dir.path().join("s.onnx");
        let mut ext = Vec::new();
        put_bytes(&mut ext, 1, b"location");
        put_bytes(&mut ext, 2, b"/etc/passwd");
        let mut extra = Vec::new();
        put_bytes(&mut extra, TENSOR_EXTERNAL_DATA, &ext);
        std::fs::write(&model, model_bytes(&[tensor_bytes("t", &[1, 2], &extra)])).unwrap();
        assert!(matches!(
            write_skeleton(&model, &skel),
            Err(SkeletonError::ExternalData)
        ));
        let mut loc = Vec::new();
        put_key(&mut loc, TENSOR_DATA_LOCATION, WIRE_VARINT);
        put_varint(&mut loc, 1);
        std::fs::write(&model, model_bytes(&[tensor_bytes("t", &[1, 2], &loc)])).unwrap();
        assert!(matches!(
            write_skeleton(&model, &skel),
            Err(SkeletonError::ExternalData)
        ));

        // Garbage and truncated files: ORT gets the file itself (and refuses it).
        for bad in [
            &b"GIF89a not a model"[..],
            &[0x3a, 0xff, 0xff, 0x03][..],
            &[0x0b][..],
        ] {
            std::fs::write(&model, bad).unwrap();
            assert!(
                matches!(
                    write_skeleton(&model, &skel),
                    Err(SkeletonError::Unsupported(_))
                ),
                "{bad:?}"
            );
        }
    }
}
