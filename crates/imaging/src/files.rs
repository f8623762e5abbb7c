//! Finding image files on disk: what `dfscan score` walks, and the
//! one-subfolder-per-label layout that `dfscan eval` and `dfscan train`
//! read. Directories are walked recursively for files with an image
//! extension, skipping hidden entries, in a stable (sorted) order.

use std::path::{Path, PathBuf};

/// What a folder walk takes for an image, by extension (any case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"];

/// The image files under `dir`, recursively, sorted, hidden entries skipped.
pub fn images_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
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

/// The non-hidden subfolders of `dir` in name order, each with the images
/// under it: a labelled set whose folder names are the labels.
pub fn label_folders(dir: &Path) -> std::io::Result<Vec<(String, Vec<PathBuf>)>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    let mut folders = Vec::new();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with('.') {
            folders.push((name, images_under(&entry.path())?));
        }
    }
    Ok(folders)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, files: &[&str]) {
        for f in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
    }

    fn relative(dir: &Path, paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn walks_directories_for_images_only() {
        let dir = tempfile::tempdir().unwrap();
        touch(
            dir.path(),
            &[
                "b.JPG",
                "a.png",
                "notes.txt",
                ".hidden.png",
                "sub/c.webp",
                ".git/d.png",
            ],
        );
        let got = images_under(dir.path()).unwrap();
        assert_eq!(relative(dir.path(), &got), ["a.png", "b.JPG", "sub/c.webp"]);
    }

    #[test]
    fn label_folders_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        touch(
            dir.path(),
            &[
                "Real/1.png",
                "Fake/x/2.jpg",
                ".cache/3.png",
                "loose.png",
                "Empty/n.txt",
            ],
        );
        let got = label_folders(dir.path()).unwrap();
        let names: Vec<_> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Empty", "Fake", "Real"]);
        assert_eq!(relative(dir.path(), &got[1].1), ["Fake/x/2.jpg"]);
        assert!(got[0].1.is_empty());
    }
}
