//! Image files on disk: finding them (what `dfscan score` walks, and the
//! one-subfolder-per-label layout that `dfscan eval` and `dfscan train`
//! read; directories are walked recursively for files with an image
//! extension, skipping hidden entries, in a stable (sorted) order), and
//! reading one within a byte limit, the one bounded reader of every path
//! that takes a file (score, eval, train, submit, a worker's URIs).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::ImagingError;

/// What a folder walk takes for an image, by extension (any case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"];

/// The image files under `dir`, recursively, sorted, hidden entries skipped.
pub fn images_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    files_under(dir, IMAGE_EXTENSIONS)
}

/// The files under `dir` with one of `extensions` (any case), recursively,
/// sorted, hidden entries skipped: [`images_under`], or images and videos
/// for `dfscan score`.
pub fn files_under(dir: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        let entry = entry?;
        if entry.file_type().is_file() && has_extension(entry.path(), extensions) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

/// The non-hidden subfolders of `dir` in name order, each with the files
/// under it with one of `extensions` (the images, or for `eval` images and
/// videos): a labelled set whose folder names are the labels.
pub fn label_folders(
    dir: &Path,
    extensions: &[&str],
) -> std::io::Result<Vec<(String, Vec<PathBuf>)>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    let mut folders = Vec::new();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with('.') {
            folders.push((name, files_under(&entry.path(), extensions)?));
        }
    }
    Ok(folders)
}

/// The bytes of the file at `path`, refused (without reading it) when it
/// is over `max` bytes.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, ImagingError> {
    read_file_limited(File::open(path)?, max)
}

/// The bytes of an open file, refused (without reading it) when it is over
/// `max` bytes; a file that grows while it is read is cut off one byte past
/// the limit and refused.
pub fn read_file_limited(file: File, max: u64) -> Result<Vec<u8>, ImagingError> {
    let size = file.metadata()?.len();
    if size > max {
        return Err(ImagingError::TooManyBytes { size, limit: max });
    }
    // `size` is within the limit: a safe first allocation.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ImagingError::GrewPastLimit { limit: max });
    }
    Ok(bytes)
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
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
    fn reads_within_the_limit_and_refuses_beyond_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        std::fs::write(&path, [7u8; 10]).unwrap();
        assert_eq!(read_limited(&path, 10).unwrap(), [7u8; 10]);
        assert_eq!(
            read_limited(&path, 9).unwrap_err().to_string(),
            "image file is 10 bytes, over the limit of 9 bytes"
        );
        let missing = read_limited(&dir.path().join("none.png"), 10).unwrap_err();
        assert!(
            missing.to_string().starts_with("cannot read: "),
            "{missing}"
        );
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
        let got = label_folders(dir.path(), IMAGE_EXTENSIONS).unwrap();
        let names: Vec<_> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Empty", "Fake", "Real"]);
        assert_eq!(relative(dir.path(), &got[1].1), ["Fake/x/2.jpg"]);
        assert!(got[0].1.is_empty());
    }
}
