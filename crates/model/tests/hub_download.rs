//! The hub download path against a local stand-in for the Hugging Face hub
//! (real HTTP on a loopback port): HEAD answers carry `X-Repo-Commit` and
//! etags, large files redirect to a storage host, and the cache must end up
//! in `huggingface_hub`'s layout. Then the hub goes away and the cache serves.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dfscan_model::hub::{resolve, HubOptions};

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

struct FakeHub {
    endpoint: String,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// Serves `files` of repo `acme/tiny` at revision main; weights redirect.
fn start_hub(files: HashMap<&'static str, Vec<u8>>) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop_flag.load(Ordering::SeqCst) {
                break;
            }
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
            }
            let mut parts = request.split_whitespace();
            let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
            let response = if let Some(file) = path.strip_prefix("/acme/tiny/resolve/main/") {
                match files.get(file) {
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                        .to_string()
                        .into_bytes(),
                    Some(body) => {
                        let etag = format!("etag-{}", file.replace('.', "-"));
                        let mut head = format!(
                            "X-Repo-Commit: {COMMIT}\r\nETag: \"{etag}\"\r\nConnection: close\r\n"
                        );
                        if file.ends_with(".safetensors") {
                            head = format!("HTTP/1.1 302 Found\r\nLocation: /storage/{file}\r\n{head}Content-Length: 0\r\n\r\n");
                            head.into_bytes()
                        } else {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\n{head}Content-Length: {}\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            if method == "GET" {
                                r.extend_from_slice(body);
                            }
                            r
                        }
                    }
                }
            } else if let Some(body) = path.strip_prefix("/storage/").and_then(|f| files.get(f)) {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
            };
            let _ = stream.write_all(&response);
        }
    });
    FakeHub { endpoint, stop }
}

fn options(cache: &Path, endpoint: &str, offline: bool) -> HubOptions {
    HubOptions {
        cache_dir: cache.to_path_buf(),
        endpoint: endpoint.to_string(),
        offline,
        token: None,
        revision: "main".into(),
        setting: dfscan_model::hub::MODEL_SETTING,
    }
}

#[test]
fn downloads_into_the_standard_cache_layout_then_serves_offline() {
    let files = HashMap::from([
        ("config.json", b"{\"model_type\":\"vit\"}".to_vec()),
        ("preprocessor_config.json", b"{}".to_vec()),
        ("model.safetensors", vec![7u8; 1000]),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let hub = start_hub(files.clone());
    let (dir, name) = resolve("acme/tiny", &options(cache.path(), &hub.endpoint, false)).unwrap();
    assert_eq!(name, "acme/tiny");
    let repo = cache.path().join("models--acme--tiny");
    assert_eq!(dir, repo.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    for (file, body) in &files {
        let link = dir.join(file);
        let target = std::fs::read_link(&link).unwrap();
        assert!(target.starts_with("../../blobs"), "{target:?}");
        assert_eq!(&std::fs::read(&link).unwrap(), body, "{file}");
    }
    drop(hub);

    // Offline by configuration, and online with the hub unreachable.
    for (endpoint, offline) in [("http://127.0.0.1:9", true), ("http://127.0.0.1:9", false)] {
        let (again, _) = resolve("acme/tiny", &options(cache.path(), endpoint, offline)).unwrap();
        assert_eq!(again, dir);
    }
}

#[test]
fn sharded_checkpoints_fetch_every_shard() {
    let index = br#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#;
    let files = HashMap::from([
        ("config.json", b"{}".to_vec()),
        ("preprocessor_config.json", b"{}".to_vec()),
        ("model.safetensors.index.json", index.to_vec()),
        ("model-00001-of-00002.safetensors", vec![1u8; 10]),
        ("model-00002-of-00002.safetensors", vec![2u8; 10]),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let hub = start_hub(files);
    let (dir, _) = resolve("acme/tiny", &options(cache.path(), &hub.endpoint, false)).unwrap();
    assert_eq!(
        std::fs::read(dir.join("model-00002-of-00002.safetensors")).unwrap(),
        vec![2u8; 10]
    );
}

#[test]
fn missing_repositories_and_bad_ids_are_clear_errors() {
    let cache = tempfile::tempdir().unwrap();
    let hub = start_hub(HashMap::new());
    let err = resolve("acme/tiny", &options(cache.path(), &hub.endpoint, false)).unwrap_err();
    assert!(err.to_string().contains("has no config.json"), "{err}");
    let err = resolve("../etc", &options(cache.path(), &hub.endpoint, false)).unwrap_err();
    assert!(
        err.to_string()
            .contains("neither a checkpoint directory nor a hub id"),
        "{err}"
    );
}
