//! The hub download path against a local stand-in for the Hugging Face hub
//! (real HTTP on a loopback port): HEAD answers carry `X-Repo-Commit` and
//! etags (LFS sha256 etags for the weights), large files redirect to a
//! storage host, and the cache must end up in `huggingface_hub`'s layout.
//! Then the hub goes away and the cache serves. Several processes fetching
//! the same model at once into one cache (re-runs of this test binary in a
//! child mode) must download each blob once and all end with checked bytes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dfscan_model::hub::{resolve, HubOptions};
use sha2::{Digest, Sha256};

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

struct FakeHub {
    endpoint: String,
    stop: Arc<AtomicBool>,
    /// Bodies served from storage, by file.
    served: Arc<Mutex<HashMap<String, usize>>>,
}

/// How the stand-in serves: `slow` writes bodies in 64 KiB pieces 10 ms
/// apart (so concurrent downloads really overlap); `corrupt` flips a byte
/// of every stored body (its LFS etag then no longer matches).
#[derive(Clone, Copy, Default)]
struct Serving {
    slow: bool,
    corrupt: bool,
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// Serves `files` of repo `acme/tiny` at revision main; weights redirect,
/// with their sha256 as `X-Linked-Etag` as the hub gives LFS files.
fn start_hub(files: HashMap<&'static str, Vec<u8>>) -> FakeHub {
    start_hub_serving(files, Serving::default())
}

fn start_hub_serving(files: HashMap<&'static str, Vec<u8>>, serving: Serving) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let served = Arc::new(Mutex::new(HashMap::new()));
    let counts = served.clone();
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop_flag.load(Ordering::SeqCst) {
                break;
            }
            let (files, counts) = (files.clone(), counts.clone());
            // One thread per connection, so that downloads overlap.
            std::thread::spawn(move || serve(stream.unwrap(), &files, &counts, serving));
        }
    });
    FakeHub {
        endpoint,
        stop,
        served,
    }
}

fn serve(
    mut stream: TcpStream,
    files: &HashMap<&'static str, Vec<u8>>,
    served: &Mutex<HashMap<String, usize>>,
    serving: Serving,
) {
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
                let mut head =
                    format!("X-Repo-Commit: {COMMIT}\r\nETag: \"{etag}\"\r\nConnection: close\r\n");
                if file.ends_with(".safetensors") {
                    let sha = sha256_hex(body);
                    head = format!("HTTP/1.1 302 Found\r\nLocation: /storage/{file}\r\nX-Linked-Etag: \"{sha}\"\r\n{head}Content-Length: 0\r\n\r\n");
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
    } else if let Some((file, body)) = path
        .strip_prefix("/storage/")
        .and_then(|f| files.get_key_value(f))
    {
        *served.lock().unwrap().entry(file.to_string()).or_default() += 1;
        let head = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut body = body.clone();
        if serving.corrupt {
            body[0] ^= 1;
        }
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let piece = if serving.slow {
            64 << 10
        } else {
            body.len().max(1)
        };
        for chunk in body.chunks(piece) {
            if stream.write_all(chunk).is_err() {
                return;
            }
            if serving.slow {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        return;
    } else {
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
    };
    let _ = stream.write_all(&response);
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
    // Values that are paths, not hub ids, are reported as paths.
    let file = cache.path().join("notes.txt");
    std::fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap();
    for (model, says) in [
        ("../no-such-checkpoint", "no such directory"),
        ("/no/such/checkpoint", "no such directory"),
        ("./vit", "no such directory"),
        ("~/vit", "`~` is not expanded"),
        (file, "is not a directory"),
    ] {
        let err = resolve(model, &options(cache.path(), &hub.endpoint, false)).unwrap_err();
        assert!(err.to_string().contains(says), "{model}: {err}");
        assert!(!err.to_string().contains("hub at"), "{model}: {err}");
    }
}

/// Set in a child process: the cache and the stand-in to fetch from.
const CHILD_CACHE: &str = "DFSCAN_TEST_HUB_CHILD_CACHE";
const CHILD_ENDPOINT: &str = "DFSCAN_TEST_HUB_CHILD_ENDPOINT";

/// The weights of the concurrency test: 2 MiB that are not all one byte.
fn weights() -> Vec<u8> {
    (0..2u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// The child side of `processes_sharing_a_cache_download_each_blob_once`:
/// a no-op in a normal test run; in a child (the variables set), fetches
/// the model and checks what it got.
#[test]
fn hub_child_fetch() {
    let (Ok(cache), Ok(endpoint)) = (std::env::var(CHILD_CACHE), std::env::var(CHILD_ENDPOINT))
    else {
        return;
    };
    let (dir, _) = resolve("acme/tiny", &options(Path::new(&cache), &endpoint, false)).unwrap();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(sha256_hex(&weights), sha256_hex(&self::weights()));
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), b"{}");
}

/// Every path under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn processes_sharing_a_cache_download_each_blob_once() {
    const PROCESSES: usize = 6;
    let files = HashMap::from([
        ("config.json", b"{}".to_vec()),
        ("preprocessor_config.json", b"{}".to_vec()),
        ("model.safetensors", weights()),
    ]);
    let cache = tempfile::tempdir().unwrap();
    // 2 MiB in 64 KiB pieces 10 ms apart: each download takes about 0.3 s,
    // so the six processes, started together, overlap.
    let hub = start_hub_serving(
        files,
        Serving {
            slow: true,
            corrupt: false,
        },
    );
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "hub_child_fetch", "--nocapture"])
                .env(CHILD_CACHE, cache.path())
                .env(CHILD_ENDPOINT, &hub.endpoint)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "a child fetch failed: {status:?}");
    }

    let repo = cache.path().join("models--acme--tiny");
    let sha = sha256_hex(&weights());
    assert_eq!(
        std::fs::read(repo.join("blobs").join(&sha)).unwrap(),
        weights()
    );
    // One download: every other process waited for the blob's lock and
    // found the blob there.
    assert_eq!(
        hub.served.lock().unwrap().get("model.safetensors"),
        Some(&1)
    );
    // The lock huggingface_hub takes for that blob is the one taken here.
    assert!(cache
        .path()
        .join(".locks/models--acme--tiny")
        .join(format!("{sha}.lock"))
        .is_file());
    // Nothing half-written is left: no .incomplete blob, no temporary ref
    // or link; the ref names the commit.
    let left: Vec<PathBuf> = walk(&repo)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".incomplete") || name.ends_with(".tmp")
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    let link = repo
        .join("snapshots")
        .join(COMMIT)
        .join("model.safetensors");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../../blobs").join(&sha)
    );
}

#[test]
fn a_download_that_fails_its_checksum_is_not_kept() {
    let files = HashMap::from([
        ("config.json", b"{}".to_vec()),
        ("preprocessor_config.json", b"{}".to_vec()),
        ("model.safetensors", vec![5u8; 1000]),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let hub = start_hub_serving(
        files,
        Serving {
            slow: false,
            corrupt: true,
        },
    );
    let err = resolve("acme/tiny", &options(cache.path(), &hub.endpoint, false)).unwrap_err();
    let sha = sha256_hex(&[5u8; 1000]);
    assert!(
        err.to_string()
            .contains(&format!("the hub's etag says {sha}")),
        "{err}"
    );
    let blobs = cache.path().join("models--acme--tiny/blobs");
    let names: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The small files were kept; the weights neither as a blob nor as a
    // partial download.
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("etag-")), "{names:?}");
}
