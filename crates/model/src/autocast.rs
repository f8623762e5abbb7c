//! Mixed precision: libtorch's autocast on CPU or CUDA in bfloat16 or
//! float16, for training with float32 master weights. tch's `autocast`
//! only switches CUDA's on and leaves its dtype at float16, so a small C++
//! shim (`csrc/autocast.cpp`, built by build.rs) calls the device-typed API.

use dfscan_core::DType;
use tch::Device;

extern "C" {
    fn dfscan_autocast_enter(cuda: i32, bf16: i32) -> i32;
    fn dfscan_autocast_exit(cuda: i32, previous: i32);
}

/// Restores the autocast state when the region ends, panics included.
struct Region {
    cuda: i32,
    previous: i32,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: pairs with the `dfscan_autocast_enter` that made `self`,
        // on the same thread (autocast state is thread-local).
        unsafe { dfscan_autocast_exit(self.cuda, self.previous) }
    }
}

/// Runs `f` with autocast to `dtype` on `device`'s type; `F32` runs it as is.
pub fn autocast<T>(device: Device, dtype: DType, f: impl FnOnce() -> T) -> T {
    let bf16 = match dtype {
        DType::F32 => return f(),
        DType::BF16 => 1,
        DType::F16 => 0,
    };
    let cuda = i32::from(device.is_cuda());
    // SAFETY: plain calls into libtorch with valid enum values.
    let previous = unsafe { dfscan_autocast_enter(cuda, bf16) };
    let _region = Region { cuda, previous };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn matmuls_run_in_the_lower_precision_inside_only() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let inside = autocast(Device::Cpu, DType::BF16, || a.matmul(&a));
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
        let nested = autocast(Device::Cpu, DType::BF16, || {
            autocast(Device::Cpu, DType::BF16, || ());
            a.matmul(&a)
        });
        assert_eq!(
            nested.kind(),
            Kind::BFloat16,
            "an inner region keeps the outer one on"
        );
        assert_eq!(
            autocast(Device::Cpu, DType::F32, || a.matmul(&a)).kind(),
            Kind::Float
        );
    }
}
