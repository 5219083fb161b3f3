//! The one place HelixFlow calls ONNX Runtime's C API directly.
//!
//! `ort` 2.0.0-rc.15 exposes `Session::run` only through `&mut self`, which would force
//! one lock per session and serialize every tenant calling the same model. ONNX Runtime
//! documents `OrtApi::Run` as safe to call concurrently on one session ("Multiple
//! threads can invoke the Run() method on the same inference session object";
//! onnxruntime.ai/docs/api/c: threading), which is what the wasi:nn host needs. So the
//! shared-session run lives here: inputs are wrapped around host buffers without a copy
//! (`CreateTensorWithDataAsOrtValue`), outputs are copied once out of ORT's buffers and
//! released.
//!
//! Architecture invariant: no other module uses `unsafe`.

use crate::tensor::TensorType;
use crate::{ErrorCode, NnError};
use ort::AsPointer;
use ort::sys::{ONNXTensorElementDataType as Et, OrtStatusPtr, OrtValue};
use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::OnceLock;

/// An input: bytes the host owns, described by type and shape. The bytes must stay
/// alive (and unmoved) until [`run`] returns; `run` borrows them.
pub struct RawInput<'a> {
    pub name: &'a str,
    pub ty: TensorType,
    pub shape: &'a [i64],
    pub data: &'a [u8],
}

/// An output, copied out of ORT.
pub struct RawOutput {
    pub ty: TensorType,
    pub shape: Vec<i64>,
    pub data: Vec<u8>,
}

fn status(st: OrtStatusPtr, what: &str) -> Result<(), NnError> {
    if st.0.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: a non-null status returned by the API; message is copied before release.
    let (msg, code) = unsafe {
        let m = CStr::from_ptr((api.GetErrorMessage)(st.0))
            .to_string_lossy()
            .into_owned();
        let c = (api.GetErrorCode)(st.0);
        (api.ReleaseStatus)(st.0);
        (m, c)
    };
    use ort::sys::OrtErrorCode as C;
    let code = match code {
        C::ORT_INVALID_ARGUMENT | C::ORT_INVALID_GRAPH | C::ORT_INVALID_PROTOBUF => {
            ErrorCode::InvalidArgument
        }
        C::ORT_NOT_IMPLEMENTED => ErrorCode::UnsupportedOperation,
        C::ORT_NO_SUCHFILE | C::ORT_NO_MODEL => ErrorCode::NotFound,
        _ => ErrorCode::RuntimeError,
    };
    Err(NnError::new(code, format!("{what}: {msg}")))
}

struct CpuInfo(*mut ort::sys::OrtMemoryInfo);
// SAFETY: an immutable OrtMemoryInfo, never released, only read by ORT.
unsafe impl Send for CpuInfo {}
unsafe impl Sync for CpuInfo {}

/// The CPU memory info every input tensor is created with. Invariant: created exactly
/// once per process, by whichever thread gets here first, while the others wait
/// (`OnceLock::get_or_init` runs one initialiser); a failed creation is remembered, not
/// retried per call. (It used to be created outside the lock, so racing first callers
/// each built one and all but one leaked.)
fn cpu_info() -> Result<*const ort::sys::OrtMemoryInfo, NnError> {
    static INFO: OnceLock<Result<CpuInfo, NnError>> = OnceLock::new();
    let info = INFO.get_or_init(|| {
        let api = ort::api();
        let mut p = ptr::null_mut();
        // SAFETY: plain constructor with an out pointer.
        status(
            unsafe {
                (api.CreateCpuMemoryInfo)(
                    ort::sys::OrtAllocatorType::OrtDeviceAllocator,
                    ort::sys::OrtMemType::OrtMemTypeDefault,
                    &mut p,
                )
            },
            "CreateCpuMemoryInfo",
        )?;
        if p.is_null() {
            return Err(NnError::new(
                ErrorCode::RuntimeError,
                "CreateCpuMemoryInfo returned no memory info",
            ));
        }
        Ok(CpuInfo(p))
    });
    match info {
        Ok(i) => Ok(i.0),
        Err(e) => Err(e.clone()),
    }
}

/// Backing store for zero-byte input tensors. ORT requires a non-null, aligned data
/// pointer even when a tensor has no elements; this one lives for the whole process,
/// so the OrtValue that points at it can never dangle (it used to point at a stack
/// buffer of the loop iteration that created it, gone before `Run`). ORT never writes
/// through an input, and a zero-byte tensor has no bytes to write anyway.
static EMPTY_INPUT: [u64; 1] = [0];

/// Checks that every element of an ONNX `bool` tensor is 0 or 1. Any other byte is not a
/// valid C++ `bool`: kernels that read it (Not, And, Where, ...) would be undefined
/// behaviour inside ONNX Runtime, so such bytes never reach it.
pub(crate) fn check_bool(name: &str, data: &[u8]) -> Result<(), NnError> {
    match data.iter().position(|b| *b > 1) {
        None => Ok(()),
        Some(i) => Err(NnError::new(
            ErrorCode::InvalidArgument,
            format!(
                "input '{name}' is a bool tensor but element {i} is {} (bool elements must be 0 or 1)",
                data[i]
            ),
        )),
    }
}

pub(crate) fn element_type(ty: TensorType) -> Et {
    match ty {
        TensorType::Fp16 => Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16,
        TensorType::Fp32 => Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
        TensorType::Fp64 => Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE,
        TensorType::Bf16 => Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16,
        TensorType::U8 => Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8,
        TensorType::I32 => Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
        TensorType::I64 => Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
        TensorType::Bool => Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL,
    }
}

fn from_element_type(t: Et) -> Option<TensorType> {
    Some(match t {
        Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 => TensorType::Fp16,
        Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT => TensorType::Fp32,
        Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE => TensorType::Fp64,
        Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16 => TensorType::Bf16,
        Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 => TensorType::U8,
        Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 => TensorType::I32,
        Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 => TensorType::I64,
        Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL => TensorType::Bool,
        _ => return None,
    })
}

/// Owns OrtValues created or returned during one run and releases them on drop.
struct Values(Vec<*mut OrtValue>);
impl Drop for Values {
    fn drop(&mut self) {
        let api = ort::api();
        for v in &self.0 {
            if !v.is_null() {
                // SAFETY: each pointer was produced by ORT for this run and is released once.
                unsafe { (api.ReleaseValue)(*v) };
            }
        }
    }
}

/// Runs `session` once. Safe to call from many threads at once on the same session
/// (see the module docs). The caller validated names, types and shapes against the
/// session's metadata; ORT re-validates and any mismatch still comes back as an error.
pub fn run(
    session: &ort::session::Session,
    inputs: &[RawInput<'_>],
    output_names: &[&str],
) -> Result<Vec<RawOutput>, NnError> {
    let outs = run_values(session, inputs, output_names)?;
    let mut result = Vec::with_capacity(outs.0.len());
    for (i, v) in outs.0.iter().enumerate() {
        result.push(read_output(*v, output_names[i])?);
    }
    Ok(result)
}

/// An output left in ORT's memory: read in place, or fed back as the next run's input
/// (the decode loop's KV cache) without a copy. Released on drop.
pub struct OrtTensor {
    value: *mut OrtValue,
    data: *const u8,
    len: usize,
    pub ty: TensorType,
    pub shape: Vec<i64>,
}

// SAFETY: the value is never mutated after `Run` returned it (ORT only reads inputs, and
// nothing else holds the pointer); releasing it from another thread is allowed.
unsafe impl Send for OrtTensor {}
unsafe impl Sync for OrtTensor {}

impl OrtTensor {
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `data` points at `len` bytes owned by `value`, alive until drop.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for OrtTensor {
    fn drop(&mut self) {
        // SAFETY: produced by Run for this tensor alone; released once.
        unsafe { (ort::api().ReleaseValue)(self.value) };
    }
}

/// Like [`run`], but the outputs stay in ORT's memory (no copy).
///
/// Invariant: no returned tensor aliases a caller-owned input buffer. ONNX Runtime may
/// hand back an input's own buffer as an output (a graph output wired straight to an
/// input, or through an aliasing op such as Identity or Reshape); a kept output would
/// then point into memory the caller frees or reuses after the run (a use-after-free
/// that a tenant's uploaded model could trigger). Such a run is refused.
pub fn run_keep(
    session: &ort::session::Session,
    inputs: &[RawInput<'_>],
    output_names: &[&str],
) -> Result<Vec<OrtTensor>, NnError> {
    let mut outs = run_values(session, inputs, output_names)?;
    let mut result = Vec::with_capacity(outs.0.len());
    for (i, slot) in outs.0.iter_mut().enumerate() {
        let v = std::mem::replace(slot, ptr::null_mut());
        // Owned from here on: released by the OrtTensor (or right below on error).
        let guard = Values(vec![v]);
        let (ty, shape, len) = describe(v, output_names[i])?;
        let mut p = ptr::null_mut();
        if len > 0 {
            // SAFETY: a live CPU tensor returned by Run.
            status(
                unsafe { (ort::api().GetTensorMutableData)(v, &mut p) },
                "GetTensorMutableData",
            )?;
        }
        if let Some(input) = aliased_input(p as *const u8, len, inputs) {
            return Err(NnError::new(
                ErrorCode::UnsupportedOperation,
                format!(
                    "model output '{}' shares memory with input '{}'; outputs kept in the host must be new tensors (e.g. not an Identity of an input)",
                    output_names[i], input
                ),
            ));
        }
        std::mem::forget(guard);
        result.push(OrtTensor {
            value: v,
            data: p as *const u8,
            len,
            ty,
            shape,
        });
    }
    Ok(result)
}

/// The input whose bytes overlap `[data, data + len)`, if any.
fn aliased_input<'a>(data: *const u8, len: usize, inputs: &[RawInput<'a>]) -> Option<&'a str> {
    if len == 0 || data.is_null() {
        return None;
    }
    let (start, end) = (data as usize, (data as usize).saturating_add(len));
    inputs.iter().find_map(|i| {
        let s = i.data.as_ptr() as usize;
        let e = s + i.data.len();
        (!i.data.is_empty() && start < e && s < end).then_some(i.name)
    })
}

fn run_values(
    session: &ort::session::Session,
    inputs: &[RawInput<'_>],
    output_names: &[&str],
) -> Result<Values, NnError> {
    let api = ort::api();
    let info = cpu_info()?;
    let mut in_values = Values(Vec::with_capacity(inputs.len()));
    let mut in_names = Vec::with_capacity(inputs.len());
    for input in inputs {
        let need = input.ty.byte_len(input.shape).ok_or_else(|| {
            NnError::new(
                ErrorCode::InvalidArgument,
                format!("input '{}': bad shape {:?}", input.name, input.shape),
            )
        })?;
        if need != input.data.len() {
            return Err(NnError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "input '{}': {} data bytes for shape {:?} of {:?} (expected {need})",
                    input.name,
                    input.data.len(),
                    input.shape,
                    input.ty
                ),
            ));
        }
        if input.ty == TensorType::Bool {
            check_bool(input.name, input.data)?;
        }
        let mut v = ptr::null_mut();
        let data_ptr: *mut u8 = if input.data.is_empty() {
            EMPTY_INPUT.as_ptr() as *mut u8
        } else {
            input.data.as_ptr() as *mut u8
        };
        // SAFETY: the tensor aliases `input.data` (or the static `EMPTY_INPUT` when it
        // has no bytes), which outlives this call; ORT only reads inputs. The length was
        // checked against shape x element size above.
        status(
            unsafe {
                (api.CreateTensorWithDataAsOrtValue)(
                    info,
                    data_ptr.cast(),
                    input.data.len(),
                    input.shape.as_ptr(),
                    input.shape.len(),
                    element_type(input.ty),
                    &mut v,
                )
            },
            &format!("input '{}'", input.name),
        )?;
        in_values.0.push(v);
        in_names
            .push(CString::new(input.name).map_err(|_| {
                NnError::new(ErrorCode::InvalidArgument, "input name contains NUL")
            })?);
    }
    let out_names: Vec<CString> = output_names
        .iter()
        .map(|n| {
            CString::new(*n)
                .map_err(|_| NnError::new(ErrorCode::InvalidArgument, "output name contains NUL"))
        })
        .collect::<Result<_, _>>()?;
    let in_name_ptrs: Vec<*const std::ffi::c_char> = in_names.iter().map(|c| c.as_ptr()).collect();
    let out_name_ptrs: Vec<*const std::ffi::c_char> =
        out_names.iter().map(|c| c.as_ptr()).collect();
    let in_ptrs: Vec<*const OrtValue> = in_values.0.iter().map(|p| *p as *const OrtValue).collect();
    let mut outs = Values(vec![ptr::null_mut(); out_names.len()]);
    // SAFETY: all arrays have the lengths passed; `Run` is documented thread-safe on a
    // shared session; output slots start null so ORT allocates them.
    status(
        unsafe {
            (api.Run)(
                session.ptr() as *mut _,
                ptr::null(),
                in_name_ptrs.as_ptr(),
                in_ptrs.as_ptr(),
                in_ptrs.len(),
                out_name_ptrs.as_ptr(),
                out_name_ptrs.len(),
                outs.0.as_mut_ptr(),
            )
        },
        "inference failed",
    )?;
    Ok(outs)
}

/// Element type, shape and byte length of a live output tensor.
fn describe(v: *mut OrtValue, name: &str) -> Result<(TensorType, Vec<i64>, usize), NnError> {
    let api = ort::api();
    if v.is_null() {
        return Err(NnError::new(
            ErrorCode::RuntimeError,
            format!("output '{name}' missing"),
        ));
    }
    let mut is_tensor = 0;
    // SAFETY: `v` is a live value returned by Run.
    status(unsafe { (api.IsTensor)(v, &mut is_tensor) }, "IsTensor")?;
    if is_tensor == 0 {
        return Err(NnError::new(
            ErrorCode::UnsupportedOperation,
            format!("output '{name}' is not a tensor (sequences and maps cannot cross wasi:nn)"),
        ));
    }
    let mut tinfo = ptr::null_mut();
    // SAFETY: as above; `tinfo` is released before returning.
    status(
        unsafe { (api.GetTensorTypeAndShape)(v, &mut tinfo) },
        "GetTensorTypeAndShape",
    )?;
    struct Info(*mut ort::sys::OrtTensorTypeAndShapeInfo);
    impl Drop for Info {
        fn drop(&mut self) {
            // SAFETY: created by GetTensorTypeAndShape, released once.
            unsafe { (ort::api().ReleaseTensorTypeAndShapeInfo)(self.0) }
        }
    }
    let tinfo = Info(tinfo);
    let mut et = Et::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    let mut rank = 0usize;
    // SAFETY: reading metadata of a live tensor info.
    unsafe {
        status(
            (api.GetTensorElementType)(tinfo.0, &mut et),
            "GetTensorElementType",
        )?;
        status(
            (api.GetDimensionsCount)(tinfo.0, &mut rank),
            "GetDimensionsCount",
        )?;
    }
    let mut shape = vec![0i64; rank];
    // SAFETY: `shape` has `rank` slots.
    status(
        unsafe { (api.GetDimensions)(tinfo.0, shape.as_mut_ptr(), rank) },
        "GetDimensions",
    )?;
    let ty = from_element_type(et).ok_or_else(|| {
        NnError::new(
            ErrorCode::UnsupportedOperation,
            format!("output '{name}' has element type {et:?}, which wasi:nn cannot represent"),
        )
    })?;
    let len = ty.byte_len(&shape).ok_or_else(|| {
        NnError::new(
            ErrorCode::RuntimeError,
            format!("output '{name}': bad shape {shape:?}"),
        )
    })?;
    Ok((ty, shape, len))
}

fn read_output(v: *mut OrtValue, name: &str) -> Result<RawOutput, NnError> {
    let (ty, shape, len) = describe(v, name)?;
    let mut data = Vec::with_capacity(len);
    if len > 0 {
        let mut p = ptr::null_mut();
        // SAFETY: a CPU-resident tensor of `len` bytes (outputs land in CPU memory:
        // no output is pre-bound to a device); copied once, then the value is released.
        unsafe {
            status(
                (ort::api().GetTensorMutableData)(v, &mut p),
                "GetTensorMutableData",
            )?;
            data.extend_from_slice(std::slice::from_raw_parts(p as *const u8, len));
        }
    }
    Ok(RawOutput { ty, shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::session;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The bool check sits in the one function every run goes through, so no caller
    /// (batcher, scheduler, a future one) can hand ONNX Runtime a byte that is not a bool.
    #[test]
    fn bool_tensors_are_checked_at_the_ffi_boundary() {
        let s = session("not_bool.onnx");
        let good = [1u8, 0, 0, 1];
        let out = run(
            &s,
            &[RawInput {
                name: "x",
                ty: TensorType::Bool,
                shape: &[1, 4],
                data: &good,
            }],
            &["y"],
        )
        .unwrap();
        assert_eq!(
            (out[0].ty, out[0].data.as_slice()),
            (TensorType::Bool, &[0u8, 1, 1, 0][..])
        );
        for bad in [[0u8, 1, 2, 0], [255, 0, 0, 0]] {
            let e = run(
                &s,
                &[RawInput {
                    name: "x",
                    ty: TensorType::Bool,
                    shape: &[1, 4],
                    data: &bad,
                }],
                &["y"],
            )
            .err()
            .unwrap();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{}", e.message);
            assert!(e.message.contains("must be 0 or 1"), "{}", e.message);
            let e = run_keep(
                &s,
                &[RawInput {
                    name: "x",
                    ty: TensorType::Bool,
                    shape: &[1, 4],
                    data: &bad,
                }],
                &["y"],
            )
            .err()
            .unwrap();
            assert_eq!(e.code, ErrorCode::InvalidArgument);
        }
    }

    /// A tensor with no elements is created on a valid, process-lifetime pointer and runs
    /// (with `run` and `run_keep`); so does a mix of empty and non-empty runs in a row.
    #[test]
    fn empty_inputs_run_cleanly() {
        let s = session("identity_fp32.onnx");
        for _ in 0..3 {
            let out = run(
                &s,
                &[RawInput {
                    name: "x",
                    ty: TensorType::Fp32,
                    shape: &[0, 3],
                    data: &[],
                }],
                &["y", "n"],
            )
            .unwrap();
            assert_eq!(
                (out[0].shape.as_slice(), out[0].data.len()),
                (&[0i64, 3][..], 0)
            );
            assert_eq!(
                out[1].data,
                [0i64, 3]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>()
            );
            let kept = run_keep(
                &s,
                &[RawInput {
                    name: "x",
                    ty: TensorType::Fp32,
                    shape: &[0, 3],
                    data: &[],
                }],
                &["n"],
            )
            .unwrap();
            assert_eq!(kept[0].shape, vec![2]);
            let x = f32_bytes(&[1.0, 2.0, 3.0]);
            let out = run(
                &s,
                &[RawInput {
                    name: "x",
                    ty: TensorType::Fp32,
                    shape: &[1, 3],
                    data: &x,
                }],
                &["y"],
            )
            .unwrap();
            assert_eq!(out[0].data, x);
        }
        assert_eq!(
            EMPTY_INPUT.as_ptr() as usize % std::mem::align_of::<u64>(),
            0
        );
    }

    /// A graph whose output is its input `x` (float [b, 3], no nodes), as
    /// `onnx.helper` writes it (60 bytes; ir 8, opset 17; `onnx.checker` accepts it).
    const PASS_THROUGH: &str = "08083a321204706173735a140a0178120f0a0d080112090a031201620a02080362140a0178120f0a0d080112090a031201620a02080342040a001011";

    fn pass_through() -> ort::session::Session {
        let bytes: Vec<u8> = (0..PASS_THROUGH.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&PASS_THROUGH[i..i + 2], 16).unwrap())
            .collect();
        crate::build_cpu(&crate::test_support::env(), &bytes).unwrap()
    }

    /// ONNX Runtime hands an input's own buffer back as an output wired to it (a tenant
    /// can upload such a model); `run_keep` must refuse to keep that output (the caller
    /// frees or reuses its inputs after the run: the kept tensor would dangle), while
    /// `run`, which copies outputs out before returning, is fine.
    #[test]
    fn kept_outputs_never_alias_caller_inputs() {
        let s = pass_through();
        let x = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let input = [RawInput {
            name: "x",
            ty: TensorType::Fp32,
            shape: &[2, 3],
            data: &x,
        }];
        // What ORT does here, seen through the raw run: the output is x's own memory.
        let raw = run_values(&s, &input, &["x"]).unwrap();
        let (_, _, len) = describe(raw.0[0], "x").unwrap();
        let mut p = ptr::null_mut();
        // SAFETY: a live CPU tensor returned by Run, read only for its address.
        status(
            unsafe { (ort::api().GetTensorMutableData)(raw.0[0], &mut p) },
            "GetTensorMutableData",
        )
        .unwrap();
        assert_eq!(
            aliased_input(p as *const u8, len, &input),
            Some("x"),
            "ORT returned the input's buffer as the output (this test relies on it)"
        );
        drop(raw);
        let e = run_keep(&s, &input, &["x"])
            .err()
            .expect("an aliasing kept output is refused");
        assert_eq!(e.code, ErrorCode::UnsupportedOperation);
        assert!(
            e.message
                .contains("output 'x' shares memory with input 'x'"),
            "{}",
            e.message
        );
        assert_eq!(run(&s, &input, &["x"]).unwrap()[0].data, x);
        // An output ORT computed into its own memory is kept.
        let id = session("identity_fp32.onnx");
        let kept = run_keep(&id, &input, &["y", "n"]).unwrap();
        assert_eq!(kept[0].bytes(), &x[..]);
        assert_eq!(
            kept[1].bytes(),
            [2i64, 3]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>()
        );
    }

    #[test]
    fn overlap_is_detected_at_every_edge() {
        let buf = [0u8; 32];
        let input = [RawInput {
            name: "a",
            ty: TensorType::U8,
            shape: &[8],
            data: &buf[8..16],
        }];
        let at = |o: usize, n: usize| aliased_input(buf[o..].as_ptr(), n, &input);
        assert_eq!(at(8, 8), Some("a"));
        assert_eq!(at(15, 1), Some("a"));
        assert_eq!(at(0, 9), Some("a"));
        assert_eq!(at(0, 8), None);
        assert_eq!(at(16, 8), None);
        assert_eq!(at(10, 0), None, "an empty output holds no bytes");
    }
}
