//! Turning the PATH arguments into the list of images and videos to score.
//! Files named explicitly are always scored (a bad one gets an error line;
//! what a file is comes from its content); directories are walked for the
//! image and video extensions, as `dfscan_imaging::files_under` walks.

use std::path::PathBuf;

use anyhow::Context;

pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            out.extend(
                dfscan_imaging::files_under(path, &extensions())
                    .with_context(|| format!("listing {}", path.display()))?,
            );
        } else {
            // Missing or unreadable files are reported per item, not fatally.
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// What a folder walk takes: image and video extensions.
pub fn extensions() -> Vec<&'static str> {
    let images = dfscan_imaging::IMAGE_EXTENSIONS.iter();
    images
        .chain(dfscan_model::VIDEO_EXTENSIONS)
        .copied()
        .collect()
}

/// The error for PATH arguments that hold no image or video.
pub fn none_found(paths: &[PathBuf]) -> String {
    let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!(
        "no images or videos found under {} (looked for files ending in {})",
        named.join(", "),
        extensions().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_files_are_kept_and_directories_walked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("imgs")).unwrap();
        for f in ["imgs/a.png", "imgs/notes.txt", "notes.txt"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let explicit = dir.path().join("notes.txt");
        let missing = dir.path().join("missing.jpg");
        let got = collect(&[explicit.clone(), dir.path().join("imgs"), missing.clone()]).unwrap();
        assert_eq!(got, [explicit, dir.path().join("imgs/a.png"), missing]);
    }
}
