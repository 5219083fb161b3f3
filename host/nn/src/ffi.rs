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
        let m = CStr::from_ptr((api.GetErrorMessage)(st.0)).to_string_lossy().into_owned();
        let c = (api.GetErrorCode)(st.0);
        (api.ReleaseStatus)(st.0);
        (m, c)
    };
    use ort::sys::OrtErrorCode as C;
    let code = match code {
        C::ORT_INVALID_ARGUMENT | C::ORT_INVALID_GRAPH | C::ORT_INVALID_PROTOBUF => ErrorCode::InvalidArgument,
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

fn cpu_info() -> Result<*const ort::sys::OrtMemoryInfo, NnError> {
    static INFO: OnceLock<CpuInfo> = OnceLock::new();
    if let Some(i) = INFO.get() {
        return Ok(i.0);
    }
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
    Ok(INFO.get_or_init(|| CpuInfo(p)).0)
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
            status(unsafe { (ort::api().GetTensorMutableData)(v, &mut p) }, "GetTensorMutableData")?;
        }
        std::mem::forget(guard);
        result.push(OrtTensor { value: v, data: p as *const u8, len, ty, shape });
    }
    Ok(result)
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
            NnError::new(ErrorCode::InvalidArgument, format!("input '{}': bad shape {:?}", input.name, input.shape))
        })?;
        if need != input.data.len() {
            return Err(NnError::new(
                ErrorCode::InvalidArgument,
                format!("input '{}': {} data bytes for shape {:?} of {:?} (expected {need})", input.name, input.data.len(), input.shape, input.ty),
            ));
        }
        let mut v = ptr::null_mut();
        // ORT requires a non-null data pointer even for zero-sized tensors.
        let mut empty = [0u8; 8];
        let data_ptr = if input.data.is_empty() { empty.as_mut_ptr() } else { input.data.as_ptr() as *mut u8 };
        // SAFETY: the tensor aliases `input.data`, which outlives this call; ORT only
        // reads inputs. The length was checked against shape x element size above.
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
        in_names.push(CString::new(input.name).map_err(|_| NnError::new(ErrorCode::InvalidArgument, "input name contains NUL"))?);
    }
    let out_names: Vec<CString> = output_names
        .iter()
        .map(|n| CString::new(*n).map_err(|_| NnError::new(ErrorCode::InvalidArgument, "output name contains NUL")))
        .collect::<Result<_, _>>()?;
    let in_name_ptrs: Vec<*const std::ffi::c_char> = in_names.iter().map(|c| c.as_ptr()).collect();
    let out_name_ptrs: Vec<*const std::ffi::c_char> = out_names.iter().map(|c| c.as_ptr()).collect();
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
        return Err(NnError::new(ErrorCode::RuntimeError, format!("output '{name}' missing")));
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
    status(unsafe { (api.GetTensorTypeAndShape)(v, &mut tinfo) }, "GetTensorTypeAndShape")?;
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
        status((api.GetTensorElementType)(tinfo.0, &mut et), "GetTensorElementType")?;
        status((api.GetDimensionsCount)(tinfo.0, &mut rank), "GetDimensionsCount")?;
    }
    let mut shape = vec![0i64; rank];
    // SAFETY: `shape` has `rank` slots.
    status(unsafe { (api.GetDimensions)(tinfo.0, shape.as_mut_ptr(), rank) }, "GetDimensions")?;
    let ty = from_element_type(et).ok_or_else(|| {
        NnError::new(
            ErrorCode::UnsupportedOperation,
            format!("output '{name}' has element type {et:?}, which wasi:nn cannot represent"),
        )
    })?;
    let len = ty
        .byte_len(&shape)
        .ok_or_else(|| NnError::new(ErrorCode::RuntimeError, format!("output '{name}': bad shape {shape:?}")))?;
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
            status((ort::api().GetTensorMutableData)(v, &mut p), "GetTensorMutableData")?;
            data.extend_from_slice(std::slice::from_raw_parts(p as *const u8, len));
        }
    }
    Ok(RawOutput { ty, shape, data })
}
