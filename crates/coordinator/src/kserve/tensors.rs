//! The tensor encodings of the Open Inference Protocol that dfscan reads
//! and writes: a BYTES input given either as `contents.bytes_contents` or
//! as one `raw_input_contents` entry (each element a 4-byte little-endian
//! length, then its bytes), and raw outputs as Triton sends them (FP32
//! little-endian, BYTES length-prefixed).

use bytes::Bytes;
use dfscan_proto::inference::model_infer_request::InferInputTensor;

use crate::error::shown;

/// Bytes of an element's length prefix: an element can be empty, so a raw
/// tensor of `n` bytes holds at most `n / 4` elements.
const PREFIX_BYTES: usize = 4;

/// Splits a raw BYTES tensor into its `expected` elements. `expected`
/// comes from the client: it is checked against what `raw` can hold before
/// anything is allocated, and the split stops at the first element past it.
pub(super) fn split_raw_bytes(raw: &Bytes, expected: usize) -> Result<Vec<Bytes>, String> {
    let room = raw.len() / PREFIX_BYTES;
    if expected > room {
        return Err(format!(
            "the shape says {expected} elements but {} raw bytes hold at most {room}",
            raw.len()
        ));
    }
    let mut elements = Vec::with_capacity(expected);
    let mut at = 0usize;
    while at < raw.len() {
        if elements.len() == expected {
            return Err(format!(
                "the shape says {expected} elements but the raw data holds more"
            ));
        }
        let Some(prefix) = raw.get(at..at + PREFIX_BYTES) else {
            return Err(format!(
                "raw BYTES data ends inside the length of element {}",
                elements.len()
            ));
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
        at += PREFIX_BYTES;
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
/// shape (1 to `max_batch`), its bytes from `raw` (the request's
/// `raw_input_contents[0]`) or from `contents`.
pub(super) fn input_images(
    input: &InferInputTensor,
    raw: Option<&Bytes>,
    max_batch: usize,
) -> Result<Vec<Bytes>, String> {
    let name = &input.name;
    if input.datatype != "BYTES" {
        return Err(format!(
            "input {name:?} is {}; it must be BYTES (encoded images)",
            shown(&input.datatype)
        ));
    }
    let count = match input.shape[..] {
        [n] | [n, 1] if n >= 0 => n as usize,
        // A client's shape can have any number of dimensions: only short
        // ones are quoted back.
        [..] if input.shape.len() <= 4 => {
            return Err(format!(
                "input {name:?} has shape {:?}; it must be [N] or [N, 1]",
                input.shape
            ))
        }
        _ => {
            return Err(format!(
                "input {name:?} has {} dimensions; its shape must be [N] or [N, 1]",
                input.shape.len()
            ))
        }
    };
    if count == 0 {
        return Err(format!("input {name:?} holds no images"));
    }
    if count > max_batch {
        return Err(format!(
            "input {name:?}: {count} images in one request; max_batch_size is {max_batch}"
        ));
    }
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

    const MAX_BATCH: usize = 64;

    #[test]
    fn reads_raw_and_contents() {
        let raw = raw_bytes(&["one", "two"]);
        let images = input_images(&input("BYTES", vec![2], None), Some(&raw), MAX_BATCH).unwrap();
        assert_eq!(images, [&b"one"[..], b"two"]);
        let images =
            input_images(&input("BYTES", vec![2, 1], None), Some(&raw), MAX_BATCH).unwrap();
        assert_eq!(images.len(), 2);
        let given = input("BYTES", vec![1], Some(vec![b"img".to_vec()]));
        assert_eq!(
            input_images(&given, None, MAX_BATCH).unwrap(),
            [&b"img"[..]]
        );
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
            (input("BYTES", vec![0], None), Some(&raw), "holds no images"),
            (
                input("BYTES", vec![65], None),
                Some(&raw),
                "65 images in one request; max_batch_size is 64",
            ),
        ];
        for (tensor, raw, expected) in cases {
            let error = input_images(&tensor, raw, MAX_BATCH).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let torn = Bytes::from_static(&[5, 0, 0, 0, b'a']);
        assert!(split_raw_bytes(&torn, 1)
            .unwrap_err()
            .contains("declares 5 bytes"));
        let short = Bytes::from_static(&[2, 0, 0, 0, b'a', b'b', 5, 0]);
        assert!(split_raw_bytes(&short, 2)
            .unwrap_err()
            .contains("inside the length"));
    }

    /// A declared count is checked before anything is sized by it: these
    /// shapes once reached `Vec::with_capacity(2^46)` and aborted the process.
    #[test]
    fn huge_declared_counts_allocate_nothing() {
        let one = raw_bytes(&["x"]);
        for shape in [
            vec![1 << 46],
            vec![1 << 46, 1],
            vec![i64::MAX],
            vec![i64::MAX, 1],
            vec![(u32::MAX as i64) + 1],
        ] {
            let tensor = input("BYTES", shape.clone(), None);
            let error = input_images(&tensor, Some(&one), MAX_BATCH).unwrap_err();
            assert!(error.contains("max_batch_size is 64"), "{shape:?}: {error}");
            // Even a server configured without a batch limit refuses it
            // from the size of the payload.
            let error = input_images(&tensor, Some(&one), usize::MAX).unwrap_err();
            assert!(error.contains("hold at most 1"), "{shape:?}: {error}");
            let error = input_images(&tensor, None, usize::MAX).unwrap_err();
            assert!(error.contains("contents holds 0"), "{shape:?}: {error}");
        }
        assert!(split_raw_bytes(&one, 1 << 46)
            .unwrap_err()
            .contains("hold at most 1"));
        assert!(split_raw_bytes(&Bytes::new(), usize::MAX)
            .unwrap_err()
            .contains("hold at most 0"));
    }

    #[test]
    fn raw_data_must_hold_exactly_the_shape() {
        // More elements than declared: the split stops at the first extra.
        let many = Bytes::from(vec![0u8; 4 * 1000]);
        assert!(split_raw_bytes(&many, 2)
            .unwrap_err()
            .contains("holds more"));
        assert_eq!(split_raw_bytes(&many, 1000).unwrap().len(), 1000);
        // A length prefix past the end of the data.
        let past = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert!(split_raw_bytes(&past, 1)
            .unwrap_err()
            .contains("declares 4294967295 bytes but 0 remain"));
        assert!(split_raw_bytes(&Bytes::new(), 0).unwrap().is_empty());
    }
}
