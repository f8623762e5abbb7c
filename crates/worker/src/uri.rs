//! Items may name a file on the worker's host instead of carrying its
//! bytes. The name comes from an untrusted caller, so a file is read only
//! when its fully resolved path (`..` and symlinks followed) lies inside one
//! of the configured roots, and never past the byte limit.

use std::path::{Path, PathBuf};

use crate::error::WorkerError;

/// The error of every URI item on a worker without roots.
pub const URI_DISABLED: &str = "URI inputs are disabled on this worker";

/// The directories URI items may be read from, resolved once at start.
#[derive(Debug)]
pub(crate) struct UriRoots {
    roots: Vec<PathBuf>,
}

impl UriRoots {
    /// Resolves each root; a root that does not exist is a configuration
    /// error worth failing the start for, not a silent refusal later.
    pub(crate) fn new(roots: &[PathBuf]) -> Result<Self, WorkerError> {
        let roots = roots
            .iter()
            .map(|root| {
                root.canonicalize().map_err(|source| WorkerError::UriRoot {
                    path: root.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { roots })
    }

    /// The bytes of the file `uri` names, or the item's error message.
    #[cfg(test)]
    pub(crate) fn read(&self, uri: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
        let path = self.resolve(uri)?;
        let file = std::fs::File::open(&path).map_err(|e| format!("{uri}: cannot read: {e}"))?;
        dfscan_imaging::read_file_limited(file, max_bytes).map_err(|e| format!("{uri}: {e}"))
    }

    /// The regular file `uri` names under the roots, canonical, or the
    /// item's error message. The analysis then reads it as an image (within
    /// the image byte limit) or opens it as a video (within the video's).
    pub(crate) fn resolve(&self, uri: &str) -> Result<PathBuf, String> {
        if self.roots.is_empty() {
            return Err(URI_DISABLED.into());
        }
        let path = Path::new(uri.strip_prefix("file://").unwrap_or(uri));
        if !path.is_absolute() {
            return Err(format!(
                "{uri}: only file:// URIs and absolute paths are accepted"
            ));
        }
        // One message whether the file is missing, unreadable or outside the
        // roots, so callers cannot probe which paths exist on the host.
        let denied = || format!("{uri}: not a readable file under this worker's URI roots");
        let resolved = path.canonicalize().map_err(|_| denied())?;
        if !self.roots.iter().any(|root| resolved.starts_with(root)) {
            return Err(denied());
        }
        // Only regular files: opening a FIFO would block a decode thread
        // forever, and a device could stream without end.
        let meta = std::fs::metadata(&resolved).map_err(|_| denied())?;
        if !meta.is_file() {
            return Err(denied());
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    /// `<tmp>/root/{inside.jpg, sub/}` and `<tmp>/outside.jpg`.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("inside.jpg"), b"inside").unwrap();
        let outside = base.join("outside.jpg");
        std::fs::write(&outside, b"outside").unwrap();
        Fixture {
            _dir: dir,
            root,
            outside,
        }
    }

    fn roots(f: &Fixture) -> UriRoots {
        UriRoots::new(std::slice::from_ref(&f.root)).unwrap()
    }

    fn path_str(p: &Path) -> String {
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn reads_files_inside_a_root() {
        let f = fixture();
        let uris = roots(&f);
        let inside = path_str(&f.root.join("inside.jpg"));
        assert_eq!(uris.read(&inside, 100).unwrap(), b"inside");
        assert_eq!(
            uris.read(&format!("file://{inside}"), 100).unwrap(),
            b"inside"
        );
        // `..` that stays inside is fine.
        let roundabout = path_str(&f.root.join("sub/../inside.jpg"));
        assert_eq!(uris.read(&roundabout, 100).unwrap(), b"inside");
    }

    #[test]
    fn refuses_everything_without_roots() {
        let f = fixture();
        let uris = UriRoots::new(&[]).unwrap();
        let inside = path_str(&f.root.join("inside.jpg"));
        assert_eq!(uris.read(&inside, 100).unwrap_err(), URI_DISABLED);
    }

    #[test]
    fn refuses_paths_outside_the_roots() {
        let f = fixture();
        let uris = roots(&f);
        let denied = |uri: &str| {
            let err = uris.read(uri, 100).unwrap_err();
            assert!(err.contains("not a readable file under"), "{uri}: {err}");
        };
        denied(&path_str(&f.outside));
        denied(&format!("file://{}", path_str(&f.outside)));
        // `..` climbing out of the root.
        denied(&path_str(&f.root.join("sub/../../outside.jpg")));
        // A missing file reads the same as one outside: no existence oracle.
        denied(&path_str(&f.root.join("missing.jpg")));
        denied(&path_str(&f.root.join("../missing.jpg")));
        // A directory inside the root is not a file.
        denied(&path_str(&f.root.join("sub")));
        // A sibling whose name merely starts with the root's.
        let sibling = f.root.with_file_name("root2");
        std::fs::create_dir_all(&sibling).unwrap();
        std::fs::write(sibling.join("x.jpg"), b"x").unwrap();
        denied(&path_str(&sibling.join("x.jpg")));
    }

    #[test]
    fn refuses_relative_paths_and_other_schemes() {
        let f = fixture();
        let uris = roots(&f);
        for uri in [
            "inside.jpg",
            "root/inside.jpg",
            "http://host/x.jpg",
            "file://relative.jpg",
        ] {
            let err = uris.read(uri, 100).unwrap_err();
            assert!(
                err.contains("only file:// URIs and absolute paths"),
                "{uri}: {err}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_judged_by_their_target() {
        let f = fixture();
        let uris = roots(&f);
        let escape = f.root.join("escape.jpg");
        std::os::unix::fs::symlink(&f.outside, &escape).unwrap();
        let err = uris.read(&path_str(&escape), 100).unwrap_err();
        assert!(err.contains("not a readable file under"), "{err}");
        let dir_escape = f.root.join("up");
        std::os::unix::fs::symlink(f.outside.parent().unwrap(), &dir_escape).unwrap();
        let err = uris
            .read(&path_str(&dir_escape.join("outside.jpg")), 100)
            .unwrap_err();
        assert!(err.contains("not a readable file under"), "{err}");
        let alias = f.root.join("sub/alias.jpg");
        std::os::unix::fs::symlink(f.root.join("inside.jpg"), &alias).unwrap();
        assert_eq!(uris.read(&path_str(&alias), 100).unwrap(), b"inside");
    }

    #[cfg(unix)]
    #[test]
    fn a_root_given_through_a_symlink_still_matches() {
        let f = fixture();
        let link = f.root.with_file_name("root-link");
        std::os::unix::fs::symlink(&f.root, &link).unwrap();
        let uris = UriRoots::new(std::slice::from_ref(&link)).unwrap();
        let inside = path_str(&link.join("inside.jpg"));
        assert_eq!(uris.read(&inside, 100).unwrap(), b"inside");
    }

    #[test]
    fn enforces_the_byte_limit() {
        let f = fixture();
        let uris = roots(&f);
        let inside = path_str(&f.root.join("inside.jpg"));
        assert_eq!(uris.read(&inside, 6).unwrap(), b"inside");
        let err = uris.read(&inside, 5).unwrap_err();
        assert!(err.contains("6 bytes, over the limit of 5 bytes"), "{err}");
    }

    #[test]
    fn a_missing_root_fails_the_start() {
        let f = fixture();
        let err = UriRoots::new(&[f.root.join("nope")]).unwrap_err();
        assert!(matches!(err, WorkerError::UriRoot { .. }), "{err}");
    }
}
