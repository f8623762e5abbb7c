//! Which names the classes carry and which one is "fake". Published
//! deepfake checkpoints have been seen with swapped `id2label` names, so
//! both can be set explicitly; `fake_score` is what moderation acts on.

use crate::error::ModelError;

/// Final class names (in class-index order) and the index of the fake class.
pub fn resolve_labels(
    model_labels: &[String],
    overrides: Option<&[String]>,
    fake_label: Option<&str>,
) -> Result<(Vec<String>, usize), ModelError> {
    let labels = match overrides {
        Some(names) if names.len() != model_labels.len() => {
            return Err(ModelError::Labels(format!(
                "{} label names given ({}) but the model has {} classes ({})",
                names.len(),
                names.join(", "),
                model_labels.len(),
                model_labels.join(", ")
            )))
        }
        Some(names) => names.to_vec(),
        None => model_labels.to_vec(),
    };
    let fake_index = match fake_label {
        Some(wanted) => labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                ModelError::Labels(format!(
                    "fake label {wanted:?} is not one of: {}",
                    labels.join(", ")
                ))
            })?,
        None => {
            let fakes: Vec<usize> = (0..labels.len())
                .filter(|&i| {
                    ["fake", "deepfake"]
                        .iter()
                        .any(|f| labels[i].eq_ignore_ascii_case(f))
                })
                .collect();
            match fakes.as_slice() {
                [one] => *one,
                [] => {
                    return Err(ModelError::Labels(format!(
                    "no label is named fake or deepfake among: {}; set fake_label (--fake-label)",
                    labels.join(", ")
                )))
                }
                _ => {
                    return Err(ModelError::Labels(format!(
                        "several labels could be the fake one ({}); set fake_label (--fake-label)",
                        labels.join(", ")
                    )))
                }
            }
        }
    };
    Ok((labels, fake_index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_the_fake_label_by_default() {
        let (labels, i) = resolve_labels(&names(&["Real", "FAKE"]), None, None).unwrap();
        assert_eq!((labels, i), (names(&["Real", "FAKE"]), 1));
        let (_, i) = resolve_labels(&names(&["deepfake", "real"]), None, None).unwrap();
        assert_eq!(i, 0);
    }

    #[test]
    fn overrides_rename_and_explicit_fake_label_wins() {
        let (labels, i) = resolve_labels(
            &names(&["Real", "Fake"]),
            Some(&names(&["Fake", "Real"])),
            None,
        )
        .unwrap();
        assert_eq!((labels, i), (names(&["Fake", "Real"]), 0));
        let (_, i) =
            resolve_labels(&names(&["LABEL_0", "LABEL_1"]), None, Some("label_1")).unwrap();
        assert_eq!(i, 1);
    }

    #[test]
    fn errors_name_the_labels() {
        let err = resolve_labels(&names(&["cat", "dog"]), None, None).unwrap_err();
        assert!(err.to_string().contains("cat, dog"), "{err}");
        let err = resolve_labels(&names(&["a", "b"]), Some(&names(&["x"])), None).unwrap_err();
        assert!(err.to_string().contains("2 classes"), "{err}");
        let err = resolve_labels(&names(&["Real", "Fake"]), None, Some("synthetic")).unwrap_err();
        assert!(err.to_string().contains("synthetic"), "{err}");
    }
}
