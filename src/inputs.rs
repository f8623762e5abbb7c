//! Turning the PATH arguments into the list of images to score. Files
//! named explicitly are always scored (a bad one gets an error line);
//! directories are walked as `dfscan_imaging::images_under` does.

use std::path::PathBuf;

use anyhow::Context;

pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            out.extend(
                dfscan_imaging::images_under(path)
                    .with_context(|| format!("listing {}", path.display()))?,
            );
        } else {
            // Missing or unreadable files are reported per item, not fatally.
            out.push(path.clone());
        }
    }
    Ok(out)
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
