//! Where and in which precision the model runs, as the user asks for it.
//! Resolving `auto` needs libtorch and happens in `dfscan-model`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The device the user asked for. `Cuda` never silently falls back to CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceRequest {
    /// CUDA device 0 when one is present, else CPU.
    #[default]
    Auto,
    Cpu,
    /// A CUDA device by ordinal (`cuda` means `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceRequest {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || CoreError::InvalidValue {
            what: "device",
            value: s.to_string(),
            expected: "cpu, cuda, cuda:N or auto",
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(invalid),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl TryFrom<String> for DeviceRequest {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceRequest> for String {
    fn from(d: DeviceRequest) -> Self {
        d.to_string()
    }
}

/// Precision of weights and activations. Softmax over the logits is always fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DType {
    #[default]
    F32,
    BF16,
    F16,
}

impl FromStr for DType {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            "f16" | "fp16" | "float16" | "half" => Ok(Self::F16),
            _ => Err(CoreError::InvalidValue {
                what: "dtype",
                value: s.to_string(),
                expected: "f32, bf16 or f16",
            }),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::BF16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

impl TryFrom<String> for DType {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DType> for String {
    fn from(d: DType) -> Self {
        d.to_string()
    }
}

/// The precision the user asked for. `Auto` is resolved where the model
/// loads (`dfscan-model`'s `dtype_choice`), from the device and, on CPU, a
/// measurement of this host's GEMMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DTypeRequest {
    #[default]
    Auto,
    Exact(DType),
}

impl FromStr for DTypeRequest {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        s.parse()
            .map(Self::Exact)
            .map_err(|_| CoreError::InvalidValue {
                what: "dtype",
                value: s.to_string(),
                expected: "auto, f32, bf16 or f16",
            })
    }
}

impl fmt::Display for DTypeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Exact(d) => d.fmt(f),
        }
    }
}

impl From<DType> for DTypeRequest {
    fn from(d: DType) -> Self {
        Self::Exact(d)
    }
}

impl TryFrom<String> for DTypeRequest {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DTypeRequest> for String {
    fn from(d: DTypeRequest) -> Self {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("CPU".parse::<DeviceRequest>().unwrap(), DeviceRequest::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Cuda(3)
        );
        assert_eq!(
            "auto".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Auto
        );
        assert!("tpu".parse::<DeviceRequest>().is_err());
        assert!("cuda:x".parse::<DeviceRequest>().is_err());
    }

    #[test]
    fn parses_dtypes() {
        assert_eq!("bfloat16".parse::<DType>().unwrap(), DType::BF16);
        assert_eq!("fp16".parse::<DType>().unwrap(), DType::F16);
        assert_eq!(DType::F32.to_string(), "f32");
        assert!("int8".parse::<DType>().is_err());
        assert_eq!("AUTO".parse::<DTypeRequest>().unwrap(), DTypeRequest::Auto);
        assert_eq!(
            "bf16".parse::<DTypeRequest>().unwrap(),
            DTypeRequest::Exact(DType::BF16)
        );
        assert_eq!(DTypeRequest::Auto.to_string(), "auto");
        assert!("int8".parse::<DTypeRequest>().is_err());
    }
}
