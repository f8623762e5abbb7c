//! The rendered chart's processes run locally: a Pod of the rendered
//! manifests becomes its volumes as directories, its environment as the
//! kubelet resolves it (references, `$(VAR)` expansion) and its container
//! as a process of this build's binaries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::common;
use super::Manifests;

/// Standard base64, as Kubernetes stores Secret data.
pub fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text}"))
}

/// Kubernetes' `$(VAR)` expansion of env values, command and args: a
/// variable defined earlier is substituted, `$$` is a literal `$`, anything
/// else is left as written.
fn expand(text: &str, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(name_end) = after.strip_prefix('(').and_then(|a| a.find(')')) {
            let name = &after[1..=name_end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, value)) => out.push_str(value),
                None => out.push_str(&rest[i..i + name_end + 3]),
            }
            rest = &after[name_end + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// What a container of a rendered pod needs to run here: its volumes as
/// local directories (mount path → directory), and the rendered objects
/// its references point at.
pub struct Pod<'a> {
    m: &'a Manifests,
    name: String,
    mounts: Vec<(String, PathBuf)>,
    /// The directories written from config maps.
    config_dirs: Vec<PathBuf>,
}

impl<'a> Pod<'a> {
    /// Lays out the volumes `container` mounts under `root`. Config maps
    /// and secrets become their files; emptyDirs empty directories; the
    /// claim named in `claims` the local directory it stands for.
    pub fn new(
        m: &'a Manifests,
        deployment: &Value,
        container: &Value,
        root: &Path,
        claims: &HashMap<&str, PathBuf>,
    ) -> Self {
        let spec = &deployment["spec"]["template"]["spec"];
        let volumes = spec["volumes"].as_array().unwrap();
        let mut mounts = Vec::new();
        let mut config_dirs = Vec::new();
        for mount in container["volumeMounts"].as_array().unwrap() {
            let name = mount["name"].as_str().unwrap();
            let volume = volumes.iter().find(|v| v["name"] == name).unwrap();
            let dir = root.join(name);
            if let Some(cm) = volume.get("configMap") {
                let data = &m.get("ConfigMap", cm["name"].as_str().unwrap())["data"];
                std::fs::create_dir_all(&dir).unwrap();
                for (file, text) in data.as_object().unwrap() {
                    std::fs::write(dir.join(file), text.as_str().unwrap()).unwrap();
                }
                config_dirs.push(dir.clone());
            } else if let Some(secret) = volume.get("secret") {
                let data = &m.get("Secret", secret["secretName"].as_str().unwrap())["data"];
                std::fs::create_dir_all(&dir).unwrap();
                for item in secret["items"].as_array().unwrap() {
                    let key = item["key"].as_str().unwrap();
                    let bytes = base64_decode(data[key].as_str().unwrap());
                    std::fs::write(dir.join(item["path"].as_str().unwrap()), bytes).unwrap();
                }
            } else if volume.get("emptyDir").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
            } else if let Some(pvc) = volume.get("persistentVolumeClaim") {
                let claim = pvc["claimName"].as_str().unwrap();
                let local = claims
                    .get(claim)
                    .unwrap_or_else(|| panic!("no local stand-in for the claim {claim}"));
                mounts.push((
                    mount["mountPath"].as_str().unwrap().to_string(),
                    local.clone(),
                ));
                continue;
            } else {
                panic!("volume kind not run locally: {volume}");
            }
            mounts.push((mount["mountPath"].as_str().unwrap().to_string(), dir));
        }
        // Longest mount path first, so nested mounts win.
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        Self {
            m,
            name: format!(
                "{}-local-0",
                deployment["metadata"]["name"].as_str().unwrap()
            ),
            mounts,
            config_dirs,
        }
    }

    /// A path inside the pod's file system as a local path (paths outside
    /// every mount are left alone).
    fn path(&self, text: &str) -> String {
        for (mount, dir) in &self.mounts {
            if let Some(rest) = text.strip_prefix(mount.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    return format!("{}{rest}", dir.display());
                }
            }
        }
        text.to_string()
    }

    /// Rewrites, in the config files written from config maps, the string
    /// values that are paths inside the pod (the model directory): the
    /// processes read those files as they are.
    pub fn rewrite_config_files(&self) {
        fn walk(v: &mut Value, pod: &Pod) {
            match v {
                Value::String(s) => *s = pod.path(s),
                Value::Array(a) => a.iter_mut().for_each(|x| walk(x, pod)),
                Value::Object(o) => o.values_mut().for_each(|x| walk(x, pod)),
                _ => {}
            }
        }
        for dir in &self.config_dirs {
            for entry in std::fs::read_dir(dir).unwrap() {
                let file = entry.unwrap().path();
                if file.extension().is_some_and(|e| e == "json") {
                    let mut config: Value =
                        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
                    walk(&mut config, self);
                    std::fs::write(&file, serde_json::to_string(&config).unwrap()).unwrap();
                }
            }
        }
    }

    /// The container's environment, references resolved and `$(VAR)`s
    /// expanded in order, as the kubelet does.
    fn env(&self, container: &Value) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = Vec::new();
        for e in container["env"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                expand(v, &vars)
            } else if let Some(r) = e["valueFrom"].get("secretKeyRef") {
                let secret = self.m.get("Secret", r["name"].as_str().unwrap());
                let data = secret["data"][r["key"].as_str().unwrap()].as_str().unwrap();
                String::from_utf8(base64_decode(data)).unwrap()
            } else if let Some(r) = e["valueFrom"].get("configMapKeyRef") {
                let cm = self.m.get("ConfigMap", r["name"].as_str().unwrap());
                cm["data"][r["key"].as_str().unwrap()]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
                self.name.clone()
            } else {
                panic!("env not resolvable locally: {e}");
            };
            vars.push((name, self.path(&value)));
        }
        vars
    }

    /// The container as a local process: the image's binaries are this
    /// build's, and nothing of this test's own environment leaks in.
    pub fn command(&self, container: &Value) -> Command {
        let env = self.env(container);
        let words: Vec<String> = container["command"]
            .as_array()
            .unwrap()
            .iter()
            .chain(container["args"].as_array().unwrap())
            .map(|w| self.path(&expand(w.as_str().unwrap(), &env)))
            .collect();
        let mut cmd = match words[0].as_str() {
            "dfscan" => Command::new(env!("CARGO_BIN_EXE_dfscan")),
            "dfscan-coordinator" => Command::new(common::dfscan_coordinator_path()),
            other => panic!("no local binary for the image command {other}"),
        };
        cmd.args(&words[1..]).env_clear().envs(env);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd
    }
}
