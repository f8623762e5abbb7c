//! Turning the PATH arguments into the list of images to score. Files
//! named explicitly are always scored (a bad one gets an error line);
//! directories are walked recursively for files with an image extension,
//! skipping hidden entries, in a stable (sorted) order.

use std::path::{Path, PathBuf};

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"];

pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            out.extend(images_under(path)?);
        } else {
            // Missing or unreadable files are reported per item, not fatally.
            out.push(path.clone());
        }
    }
    Ok(out)
}

pub fn images_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        let entry = entry?;
        if entry.file_type().is_file() && has_image_extension(entry.path()) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_directories_for_images_only() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "b.JPG",
            "a.png",
            "notes.txt",
            ".hidden.png",
            "sub/c.webp",
            ".git/d.png",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let explicit = dir.path().join("notes.txt");
        let got = collect(&[dir.path().to_path_buf(), explicit.clone()]).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            [
                PathBuf::from("a.png"),
                "b.JPG".into(),
                "sub/c.webp".into(),
                "notes.txt".into()
            ]
        );
    }
}
