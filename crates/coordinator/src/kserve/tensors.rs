//! The tensor encodings of the Open Inference Protocol that dfscan reads
//! and writes: a BYTES input given either as `contents.bytes_contents` or
//! as one `raw_input_contents` entry (each element a 4-byte little-endian
//! length, then its bytes), and raw outputs as Triton sends them (FP32
//! little-endian, BYTES length-prefixed).

use bytes::Bytes;
use dfscan_proto::inference::model_infer_request::InferInputTensor;

/// Splits a raw BYTES tensor into its `expected` elements.
pub(super) fn split_raw_bytes(raw: &Bytes, expected: usize) -> Result<Vec<Bytes>, String> {
    let mut elements = Vec::with_capacity(expected);
    let mut at = 0usize;
    while at < raw.len() {
        let Some(prefix) = raw.get(at..at + 4) else {
            return Err(format!(
                "raw BYTES data ends inside the length of element {}",
                elements.len()
            ));
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
        at += 4;
        if raw.len() - at < len {
            return Err(format!(
                "raw BYTES element {} declares {len} bytes but {} remain",
                elements.len(),
                raw.len() - at
            ));
        }
        elements.push(raw.slice(at..at + len));
        at += len;
    }
    if elements.len() != expected {
        return Err(format!(
            "the shape says {expected} elements but the raw data holds {}",
            elements.len()
        ));
    }
    Ok(elements)
}

/// The images of the request's one input: its element count from the
/// shape, its bytes from `raw` (the request's `raw_input_contents[0]`)
/// or from `contents`.
pub(super) fn input_images(
    input: &InferInputTensor,
    raw: Option<&Bytes>,
) -> Result<Vec<Bytes>, String> {
    let name = &input.name;
    if input.datatype != "BYTES" {
        return Err(format!(
            "input {name:?} is {}; it must be BYTES (encoded images)",
            input.datatype
        ));
    }
    let count = match input.shape[..] {
        [n] | [n, 1] if n >= 0 => n as usize,
        _ => {
            return Err(format!(
                "input {name:?} has shape {:?}; it must be [N] or [N, 1]",
                input.shape
            ))
        }
    };
    let from_contents = input
        .contents
        .as_ref()
        .map_or(0, |c| c.bytes_contents.len());
    match raw {
        Some(_) if from_contents > 0 => Err(format!(
            "input {name:?} has both raw_input_contents and contents"
        )),
        Some(raw) => split_raw_bytes(raw, count).map_err(|e| format!("input {name:?}: {e}")),
        None if from_contents != count => Err(format!(
            "input {name:?}: the shape says {count} elements but contents holds {from_contents}"
        )),
        None => Ok(input
            .contents
            .as_ref()
            .map(|c| c.bytes_contents.clone())
            .unwrap_or_default()),
    }
}

/// FP32 values as raw little-endian bytes.
pub(super) fn raw_fp32(values: &[f32]) -> Bytes {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

/// Strings as a raw BYTES tensor.
pub(super) fn raw_bytes(values: &[&str]) -> Bytes {
    let mut out = Vec::with_capacity(values.iter().map(|v| v.len() + 4).sum());
    for value in values {
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use dfscan_proto::inference::InferTensorContents;

    use super::*;

    fn input(datatype: &str, shape: Vec<i64>, contents: Option<Vec<Vec<u8>>>) -> InferInputTensor {
        InferInputTensor {
            name: "IMAGE".into(),
            datatype: datatype.into(),
            shape,
            contents: contents.map(|bytes| InferTensorContents {
                bytes_contents: bytes.into_iter().map(Bytes::from).collect(),

                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn raw_bytes_round_trip() {
        let raw = raw_bytes(&["ab", "", "xyz"]);
        let split = split_raw_bytes(&raw, 3).unwrap();
        assert_eq!(split, [&b"ab"[..], b"", b"xyz"]);
    }

    #[test]
    fn reads_raw_and_contents() {
        let raw = raw_bytes(&["one", "two"]);
        let images = input_images(&input("BYTES", vec![2], None), Some(&raw)).unwrap();
        assert_eq!(images, [&b"one"[..], b"two"]);
        let images = input_images(&input("BYTES", vec![2, 1], None), Some(&raw)).unwrap();
        assert_eq!(images.len(), 2);
        let given = input("BYTES", vec![1], Some(vec![b"img".to_vec()]));
        assert_eq!(input_images(&given, None).unwrap(), [&b"img"[..]]);
    }

    #[test]
    fn names_what_is_wrong() {
        let raw = raw_bytes(&["one", "two"]);
        let cases = [
            (input("FP32", vec![2], None), Some(&raw), "must be BYTES"),
            (
                input("BYTES", vec![2, 3], None),
                Some(&raw),
                "must be [N] or [N, 1]",
            ),
            (
                input("BYTES", vec![-1], None),
                Some(&raw),
                "must be [N] or [N, 1]",
            ),
            (
                input("BYTES", vec![3], None),
                Some(&raw),
                "the shape says 3",
            ),
            (
                input("BYTES", vec![1], Some(vec![b"x".to_vec()])),
                Some(&raw),
                "both raw_input_contents and contents",
            ),
            (
                input("BYTES", vec![2], Some(vec![])),
                None,
                "contents holds 0",
            ),
        ];
        for (tensor, raw, expected) in cases {
            let error = input_images(&tensor, raw).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let torn = Bytes::from_static(&[5, 0, 0, 0, b'a']);
        assert!(split_raw_bytes(&torn, 1)
            .unwrap_err()
            .contains("declares 5 bytes"));
        let short = Bytes::from_static(&[5, 0]);
        assert!(split_raw_bytes(&short, 1)
            .unwrap_err()
            .contains("inside the length"));
    }
}
