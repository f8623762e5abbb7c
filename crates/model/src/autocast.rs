//! Mixed precision: libtorch's autocast on CPU or CUDA in bfloat16 or
//! float16, for training with float32 master weights. tch's `autocast`
//! only switches CUDA's on and leaves its dtype at float16, so a small C++
//! shim (`csrc/autocast.cpp`, built by build.rs) calls the device-typed API.
//! The shim catches every C++ exception (no unwinding across the FFI
//! boundary) and reports it as an error; a region restores both the
//! enabled flag and the dtype it found.

use std::ffi::{c_char, c_int, CStr};

use dfscan_core::DType;
use tch::Device;

use crate::ModelError;

extern "C" {
    fn dfscan_autocast_enter(
        device: c_int,
        bf16: c_int,
        previous_enabled: *mut c_int,
        previous_dtype: *mut c_int,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn dfscan_autocast_exit(
        device: c_int,
        previous_enabled: c_int,
        previous_dtype: c_int,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// Room for libtorch's message (its checks can be long; the rest is cut).
const ERROR_LEN: usize = 1024;

/// `c10::DeviceType` of a tch device.
fn device_type(device: Device) -> c_int {
    match device {
        Device::Cpu => 0,
        Device::Cuda(_) => 1,
        Device::Vulkan => 10,
        Device::Mps => 13,
    }
}

/// Runs one shim call, turning its -1 into the message it wrote.
fn checked(call: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<(), ModelError> {
    let mut error = [0 as c_char; ERROR_LEN];
    if call(error.as_mut_ptr(), ERROR_LEN) == 0 {
        return Ok(());
    }
    // SAFETY: the shim always writes a terminated string into the buffer
    // before returning -1 (snprintf within ERROR_LEN).
    let message = unsafe { CStr::from_ptr(error.as_ptr()) };
    Err(ModelError::Torch(format!(
        "autocast: {}",
        message.to_string_lossy()
    )))
}

/// The state a region replaced, put back when it ends, panics included.
struct Region {
    device: c_int,
    previous_enabled: c_int,
    previous_dtype: c_int,
    open: bool,
}

impl Region {
    fn enter(device: c_int, dtype: DType) -> Result<Self, ModelError> {
        let bf16 = c_int::from(dtype == DType::BF16);
        let (mut previous_enabled, mut previous_dtype) = (0, 0);
        // SAFETY: the out-pointers are valid for the call; the shim catches
        // every C++ exception.
        checked(|error, len| unsafe {
            dfscan_autocast_enter(
                device,
                bf16,
                &mut previous_enabled,
                &mut previous_dtype,
                error,
                len,
            )
        })?;
        Ok(Self {
            device,
            previous_enabled,
            previous_dtype,
            open: true,
        })
    }

    fn exit(&mut self) -> Result<(), ModelError> {
        self.open = false;
        // SAFETY: pairs with the enter that made `self`, on the same thread
        // (autocast state is thread-local); the shim catches exceptions.
        checked(|error, len| unsafe {
            dfscan_autocast_exit(
                self.device,
                self.previous_enabled,
                self.previous_dtype,
                error,
                len,
            )
        })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Reached with the region open only when `f` panicked.
        if self.open {
            if let Err(error) = self.exit() {
                tracing::error!(%error, "restoring autocast after a panic");
            }
        }
    }
}

/// Runs `f` with autocast to `dtype` on `device`'s type; `F32` runs it as is.
/// A device type libtorch has no autocast for is an error, before `f` runs.
pub fn autocast<T>(device: Device, dtype: DType, f: impl FnOnce() -> T) -> Result<T, ModelError> {
    if dtype == DType::F32 {
        return Ok(f());
    }
    let mut region = Region::enter(device_type(device), dtype)?;
    let value = f();
    region.exit()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn square(a: &Tensor) -> Tensor {
        a.matmul(a)
    }

    #[test]
    fn matmuls_run_in_the_lower_precision_inside_only() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let inside = autocast(Device::Cpu, DType::BF16, || square(&a)).unwrap();
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(square(&a).kind(), Kind::Float);
        let nested = autocast(Device::Cpu, DType::BF16, || {
            autocast(Device::Cpu, DType::BF16, || ()).unwrap();
            square(&a)
        })
        .unwrap();
        assert_eq!(
            nested.kind(),
            Kind::BFloat16,
            "an inner region keeps the outer one on"
        );
        assert_eq!(
            autocast(Device::Cpu, DType::F32, || square(&a))
                .unwrap()
                .kind(),
            Kind::Float
        );
    }

    #[test]
    fn an_inner_region_gives_back_the_outer_dtype() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let (inner, after_inner) = autocast(Device::Cpu, DType::BF16, || {
            let inner = autocast(Device::Cpu, DType::F16, || square(&a)).unwrap();
            (inner, square(&a))
        })
        .unwrap();
        assert_eq!(inner.kind(), Kind::Half);
        assert_eq!(after_inner.kind(), Kind::BFloat16);
        assert_eq!(square(&a).kind(), Kind::Float);
    }

    #[test]
    fn a_libtorch_error_comes_back_as_an_error() {
        // libtorch has no autocast for Vulkan: its check throws inside the
        // shim, which must become an error here, not an abort.
        let error = autocast(Device::Vulkan, DType::BF16, || unreachable!()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("autocast"), "{message}");
        assert!(message.contains("device type"), "{message}");
        // Nothing was left switched on.
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        assert_eq!(square(&a).kind(), Kind::Float);
    }

    #[test]
    fn a_panic_inside_restores_the_state() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let outcome = std::panic::catch_unwind(|| {
            autocast(Device::Cpu, DType::BF16, || panic!("inside the region"))
        });
        assert!(outcome.is_err());
        assert_eq!(square(&a).kind(), Kind::Float);
    }
}
